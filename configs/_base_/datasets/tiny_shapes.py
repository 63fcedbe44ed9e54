# The generated tiny shapes classification set (4 classes of 64x64 images;
# tools/misc/make_tiny_datasets.py), without pipelines, which each config
# states. data_root and classes keep their usual names, as no parent of the
# tiny classification configs defines them; the data sets have names of
# their own (why: ../tiny_runtime.py), used as _base_.<name>.
data_root = 'data/tiny_shapes'
classes = 'data/tiny_shapes/classes.txt'
tiny_shapes = dict(type='CustomDataset', data_root=data_root, classes=classes)
tiny_shapes_train = dict(
    ann_file='meta/train.txt', data_prefix='train', **tiny_shapes)
tiny_shapes_val = dict(
    ann_file='meta/val.txt', data_prefix='val', **tiny_shapes)
