"""The regions a device follows besides its home region (SPEC FED-16, FED-17).

A person who travels follows the regions they visit: each is published by its own
health authority at its own export URL and verified only with that authority's key.
Regions come from the settings (``PHE_TRACE_AGENT_REGIONS``) and from
``phe-trace agent region add``, which keeps them sealed in the device's store — which
regions a person follows says where they go, so it is kept like everything else the
device records. Each region has its own processed-file state in the sync state.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from phe_trace.protocol import export
from phe_trace.protocol.errors import ExportError

from .config import AgentConfig, FollowedRegion
from .errors import AgentConfigError
from .state import Regions, SyncState
from .store import AgentStore

__all__ = ["add_region", "followed_regions", "region_from_options", "remove_region"]


def _stored(store: AgentStore) -> list[FollowedRegion]:
    return store.load(Regions).items


def followed_regions(config: AgentConfig, store: AgentStore) -> list[FollowedRegion]:
    """The regions followed besides home: the settings' first, then the added ones."""
    return [*config.regions, *_stored(store)]


def region_from_options(
    name: str, url: str, key_file: Path, region: str | None, key_id: str | None
) -> FollowedRegion:
    """A region from the command line's options; the PEM key is read and kept as base64
    SubjectPublicKeyInfo, so the region keeps working when the file goes away."""
    try:
        key = export.load_public_key_pem(key_file.read_bytes())
    except OSError as exc:
        raise AgentConfigError(f"cannot read the key {key_file}: {exc.strerror}") from None
    except ExportError as exc:
        raise AgentConfigError(f"the key {key_file} cannot be used: {exc}") from None
    try:
        return FollowedRegion(
            name=name,
            region=region or name,
            export_url=url,
            public_keys=(export.public_key_spki_base64(key),),
            key_id=key_id,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise AgentConfigError(f"invalid region: {problems}") from None


def add_region(config: AgentConfig, store: AgentStore, region: FollowedRegion) -> None:
    """Follow ``region`` (its name must be new on this device)."""
    taken = {config.region, *(r.name for r in followed_regions(config, store))}
    if region.name in taken:
        raise AgentConfigError(f"a region named {region.name!r} is already followed")
    store.save(Regions([*_stored(store), region]))


def remove_region(config: AgentConfig, store: AgentStore, name: str) -> FollowedRegion:
    """Stop following the added region ``name``; its processed-file state goes too."""
    stored = _stored(store)
    kept = [r for r in stored if r.name != name]
    if len(kept) == len(stored):
        if any(r.name == name for r in config.regions):
            raise AgentConfigError(
                f"region {name!r} comes from the settings (PHE_TRACE_AGENT_REGIONS): "
                "remove it there"
            )
        raise AgentConfigError(f"no region named {name!r} is followed")
    store.save(Regions(kept))
    state = store.load(SyncState)
    if name in state.regions:
        del state.regions[name]
        store.save(state)
    return next(r for r in stored if r.name == name)
