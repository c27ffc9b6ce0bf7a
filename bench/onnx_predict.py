"""Predictions of the fastnn model through ONNX Runtime: the driver exports the model
with `model.export(path, format="onnx")` (the same weights every implementation
starts from); this runs the file in an InferenceSession on the CPU with
intra_op_num_threads = the thread count, inter_op_num_threads = 1 and sequential
execution (ONNX Runtime's usual low-latency setting; its thread spinning is left at
its default). The session's own output (softmax probabilities) comes back as NumPy.

ONNX Runtime is a comparison only, never a dependency of fastnn:
`pip install onnxruntime`.
"""
import numpy as np


def export_model(net, weights, dtype, path):
    """Write the fastnn network holding `weights` to path as ONNX (run by the driver,
    which has fastnn; the worker running the session does not import it)."""
    from fastnn_mlp import build_model
    build_model(net, weights, dtype).export(path, format="onnx", verbose=False)
    return path


class OnnxPredict:
    def __init__(self, path, threads):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name

    def predictor(self, x):
        x = np.ascontiguousarray(x)
        run, feed, out = self.session.run, {self.input: x}, [self.output]
        return lambda: run(out, feed)[0]

    def predict(self, x):
        return self.predictor(x)()
