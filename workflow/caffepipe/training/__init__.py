"""Nets and training: the model zoo, prototxt generation, `caffe train` with snapshots and resume, log parsing."""
