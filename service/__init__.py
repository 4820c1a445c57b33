"""ganserve's online half: serve generator ONNX files over HTTP with onnxruntime.

Run it with `gan-serve` (see `service.__main__`); build it in-process with
`service.app.create_app(settings)`. Never imports torch or `training/`.
"""
