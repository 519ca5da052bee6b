"""What users run: the Colorizer API, the command lines (gan-colorize, evaluate.py, train.py,
export), the ONNX backend and the web demo."""
