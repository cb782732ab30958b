"""The shared transformer backbone: configs, blocks, feed-forward variants, attention, encoders."""
