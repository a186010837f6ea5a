"""Models: the LiteRT runner and static analysis of .tflite files."""
