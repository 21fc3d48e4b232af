"""Talk: the spoken conversation. The voice loop, turn taking, voice activity, the echo gate, the reply cut into
pieces to say, and the sound devices with their stand-in files."""
