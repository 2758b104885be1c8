"""Training pipeline: MNIST -> Keras CNN -> ONNX -> verified, evaluated, documented model."""
