"""``tantra serve``: one warm Tantra behind the OpenAI API, for any OpenAI client and for the CLI itself."""
