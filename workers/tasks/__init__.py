"""One module per job kind. Heavy imports (TensorFlow, onnxruntime) happen inside the tasks that need them."""
