"""The committed generated module matches protocol_spec/export.proto (SPEC EXP-2, EXP-3)."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from phe_trace.protocol import export_pb2

SPEC_DIR = Path(__file__).resolve().parents[2] / "protocol_spec"


def test_generated_module_is_compiled_from_the_committed_proto(tmp_path: Path) -> None:
    """Regenerate the descriptor with protoc: the committed export_pb2 must carry the same."""
    out = tmp_path / "export.desc"
    status = protoc.main(
        [
            "protoc",
            f"--proto_path={SPEC_DIR}",
            f"--descriptor_set_out={out}",
            str(SPEC_DIR / "export.proto"),
        ]
    )
    assert status == 0
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    for message in compiled.message_type:  # generated code leaves json_name out
        for field in message.field:
            field.ClearField("json_name")
    committed = descriptor_pb2.FileDescriptorProto.FromString(export_pb2.DESCRIPTOR.serialized_pb)
    assert committed == compiled


def test_proto2_presence_and_field_numbers() -> None:
    """EXP-3: proto2 with explicit presence on every scalar; GAEN field numbers and types."""
    fields = {f.name: f for f in export_pb2.TemporaryExposureKey.DESCRIPTOR.fields}
    assert all(f.has_presence for f in fields.values())
    numbers = {name: f.number for name, f in fields.items()}
    assert numbers == {
        "key_data": 1,
        "transmission_risk_level": 2,
        "rolling_start_interval_number": 3,
        "rolling_period": 4,
        "report_type": 5,
        "days_since_onset_of_symptoms": 6,
        "variant_of_concern": 8,
    }
    assert (
        fields["days_since_onset_of_symptoms"].type
        == fields["days_since_onset_of_symptoms"].TYPE_SINT32
    )
    assert fields["rolling_period"].default_value == 144
    header = {
        f.name: (f.number, f.type) for f in export_pb2.TemporaryExposureKeyExport.DESCRIPTOR.fields
    }
    fixed64 = export_pb2.TemporaryExposureKeyExport.DESCRIPTOR.fields[0].TYPE_FIXED64
    assert header["start_timestamp"] == (1, fixed64) and header["end_timestamp"] == (2, fixed64)
    info = {f.name: f.number for f in export_pb2.SignatureInfo.DESCRIPTOR.fields}
    assert info == {
        "android_package": 2,
        "verification_key_version": 3,
        "verification_key_id": 4,
        "signature_algorithm": 5,
    }
