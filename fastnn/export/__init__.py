"""Exporting trained models to formats that run outside Python.

`fastnn.export.onnx` writes ONNX (`model.export(path, format="onnx")`). It needs the
optional `onnx` package (`pip install 'fastnn[onnx]'`), imported only when an export runs:
`import fastnn` never imports it.
"""
