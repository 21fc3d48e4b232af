"""Language: SpikingBrain in use. The converter, generation, the conversation, the prompt layout that grounds a reply,
the reply filter, the chat session, and the language model on a server."""
