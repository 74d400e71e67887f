"""audiozoo.export: ONNX (tracing exporter + ONNX Runtime check) and ``torch.export`` of models."""

from .onnx import (
    ExportError,
    ExportSpec,
    MethodModule,
    check_onnx,
    export_checked,
    export_onnx,
    export_program,
    export_spec,
    run_onnx,
)

__all__ = ["ExportError", "ExportSpec", "MethodModule", "check_onnx", "export_checked", "export_onnx", "export_program",
           "export_spec", "run_onnx"]
