"""Vision: images in. Reading image files, the local classifier and its converter, OCR, image embeddings, a
vision-language model on a server, and the describer that turns all of it into facts for the language model."""
