"""The D-Bus policy ``device/`` installs lets the agent's user call BlueZ and nothing else."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

POLICY = Path(__file__).resolve().parents[2] / "device" / "dbus-phe-trace-agent.conf"


def send_rule_problems(text: str) -> list[str]:
    """Every rule that lets the user send anything other than a call to ``org.bluez``."""
    root = ET.fromstring(text)
    problems = []
    for policy in root.iter("policy"):
        if policy.attrib != {"user": "phe-trace"}:
            problems.append(f"policy {policy.attrib} is not the phe-trace user's")
        for rule in policy:
            attrs = rule.attrib
            if rule.tag != "allow" or not any(name.startswith("send_") for name in attrs):
                problems.append(f"<{rule.tag} {attrs}> is not a send rule")
            elif attrs.get("send_destination") != "org.bluez":
                problems.append(f"<allow {attrs}> is not scoped to org.bluez")
    return problems


def test_every_send_rule_is_scoped_to_bluez() -> None:
    """AGENT-1: each rule of the installed policy sends only to ``org.bluez``."""
    text = POLICY.read_text(encoding="utf-8")
    assert send_rule_problems(text) == []
    interfaces = {rule.attrib.get("send_interface") for rule in ET.fromstring(text).iter("allow")}
    assert "org.bluez.LEAdvertisingManager1" in interfaces  # what the bluez backend calls


@pytest.mark.parametrize(
    "rule",
    [
        '<allow send_interface="org.freedesktop.DBus.Properties"/>',
        '<allow send_destination="*" send_interface="org.bluez.Adapter1"/>',
        '<allow send_destination="org.freedesktop.systemd1"/>',
        '<allow own="org.bluez"/>',
    ],
)
def test_a_rule_beyond_bluez_is_found(rule: str) -> None:
    """AGENT-1: the check refuses an unscoped interface, a wildcard, another service, own."""
    text = POLICY.read_text(encoding="utf-8").replace("</policy>", f"  {rule}\n  </policy>")
    assert len(send_rule_problems(text)) == 1
