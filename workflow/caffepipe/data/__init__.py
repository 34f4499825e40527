"""Data stages: fetch MNIST / Fashion-MNIST, build the Caffe databases, export image files, benchmark reads."""
