"""ganserve's evaluation room: score an exported generator ONNX file against real data.

Reads ONNX files through the contract (`core.contract`) and runs them with onnxruntime;
no torch (only retraining the evaluator network needs it: `evaluation.train_feature_net`).
`gan-evaluate` is `evaluation.cli`; docs/evaluation.md says what every number means.
"""
