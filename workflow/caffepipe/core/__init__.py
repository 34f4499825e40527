"""Shared infrastructure every stage uses: atomic writes, the user-facing error, the Caffe environment, figures,
progress lines, reading earlier stages' outputs, and `caffepipe doctor`."""
