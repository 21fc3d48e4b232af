"""Voice: text to speech. Text as a voice reads it, the speaker and its backends (Piper, espeak-ng, Coqui, a server),
and where the audio goes."""
