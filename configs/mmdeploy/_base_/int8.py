# int8 post-training quantization settings (our own keys; tools/deploy.py
# reads them): activation ranges by `method` ('minmax', 'percentile' or
# 'entropy'), on at most `num_images` calibration images, and the layers
# kept in fp32 ('first': the stem, 'last': the classifier or the heads'
# output convolutions). docs/deployment.md#int8 has the measurements behind
# these defaults.
calib_config = dict(method='percentile', num_images=200, fp32_layers=[])
