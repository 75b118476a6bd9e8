from zoo import quiet as _quiet

_quiet.install()  # TensorFlow loads silently, whoever imports it
