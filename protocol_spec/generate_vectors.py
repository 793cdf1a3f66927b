"""Generate phe-trace's own test vectors for the advertisement payload and metadata.

Run once: ``python protocol_spec/generate_vectors.py``. The generator is seeded, so a run
reproduces the committed files exactly; it refuses to overwrite an existing file unless
``--force`` is given (vectors are never silently regenerated). The tests check these
files with an implementation independent of the one that wrote them (``cryptography``'s
HKDF and AES directly, AD bytes laid out by hand).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from phe_trace import crypto
from phe_trace.protocol.advertisement import build_advertising_data, build_service_data

SEED = 20201125
OUT = Path(__file__).resolve().parent / "vectors"


def _metadata_cases(rng: random.Random) -> list[dict[str, object]]:
    cases: list[dict[str, object]] = []
    for minor in (0, 1):
        for confidence in crypto.CalibrationConfidence:
            tx = rng.randint(-127, 127)
            md = crypto.Metadata(tx, minor, confidence)
            cases.append(
                {
                    "version_major": 1,
                    "version_minor": minor,
                    "calibration_confidence": int(confidence),
                    "tx_power_dbm": tx,
                    "bytes": md.to_bytes().hex(),
                }
            )
    return cases


def _advertisement_cases(rng: random.Random, n: int) -> list[dict[str, object]]:
    cases: list[dict[str, object]] = []
    for _ in range(n):
        tek = rng.randbytes(16)
        day = rng.randint(2_600_000, 2_900_000) // 144 * 144
        interval = day + rng.randint(0, 143)
        metadata = crypto.Metadata(rng.randint(-30, 10)).to_bytes()
        rpi = crypto.rpi(crypto.rpik(tek), interval)
        aem = crypto.encrypt_metadata(crypto.aemk(tek), rpi, metadata)
        cases.append(
            {
                "tek": tek.hex(),
                "en_interval_number": interval,
                "metadata": metadata.hex(),
                "rpi": rpi.hex(),
                "aem": aem.hex(),
                "service_data": build_service_data(rpi, aem).hex(),
                "advertising_data": build_advertising_data(rpi, aem).hex(),
            }
        )
    return cases


def _provenance(description: str) -> dict[str, object]:
    return {
        "kind": "generated",
        "generator": "protocol_spec/generate_vectors.py",
        "seed": SEED,
        "description": description,
        "checked_by": "tests/protocol/test_generated_vectors.py (independent computation)",
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    args = parser.parse_args(argv)
    rng = random.Random(SEED)
    files = {
        "metadata.json": {
            "provenance": _provenance("Associated metadata v1.0 and v1.1 encodings."),
            "cases": _metadata_cases(rng),
        },
        "advertisement_payloads.json": {
            "provenance": _provenance(
                "TEK → RPI/AEM at an interval, the 20-byte 0xFD6F service data and the "
                "31-byte legacy advertising data."
            ),
            "cases": _advertisement_cases(rng, 16),
        },
    }
    for name, content in files.items():
        path = OUT / name
        if path.exists() and not args.force:
            print(f"{path} exists; not overwriting (use --force)", file=sys.stderr)
            continue
        path.write_text(json.dumps(content, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
