"""How a restorer is scored: the classifiers' readings, the metrics, OpenCV's inpainting baseline and the
table by damage family."""
