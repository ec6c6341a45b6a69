"""Pod networking through CNI plugins, as the CNI specification (and ``libcni``) runs them.

Networks are the configuration files in ``conf_dir``, sorted by name: ``*.conflist`` (a
network list) and ``*.conf``/``*.json`` (one plugin, wrapped into a list); the first
``max_conf_num`` valid ones are used (0: all), attached as ``eth0``, ``eth1``, …. A pod
always gets its loopback first (``loopback`` plugin on ``lo``, as containerd's go-cni).

A plugin is executed as ``<bin_dir>/<type>`` with the network configuration on stdin and
``CNI_COMMAND``, ``CNI_CONTAINERID``, ``CNI_NETNS``, ``CNI_IFNAME``, ``CNI_ARGS``
(``IgnoreUnknown=1;K8S_POD_NAMESPACE=…;K8S_POD_NAME=…;K8S_POD_INFRA_CONTAINER_ID=…;K8S_POD_UID=…``)
and ``CNI_PATH`` in its environment. Each plugin's configuration gets the list's ``name`` and
``cniVersion``, the previous plugin's result as ``prevResult`` (ADD), and ``runtimeConfig``
entries for the capabilities it declares (``portMappings``). ADD runs the plugins in order;
DEL runs them in reverse with the cached ADD result as ``prevResult`` (CNI ≥ 0.4.0); CHECK
runs them in order with it. The ADD result and the configuration used are cached per
``(network, sandbox, ifname)`` under ``cache_dir``, so DEL works after a restart and after
the configuration file is gone (libcni's ``cniCacheV1``).

A failing plugin reports ``{"code", "msg", "details"}`` on stdout and a non-zero exit; that
becomes :class:`NetworkError` naming the plugin and the command.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errdefs import ContainerdError, quote
from ..log import get_logger
from .store import write_json_atomic

log = get_logger("cri.cni")

LOOPBACK = {"cniVersion": "0.3.1", "name": "cni-loopback", "plugins": [{"type": "loopback"}]}
EXTENSIONS = (".conf", ".conflist", ".json")
PLUGIN_TIMEOUT = 60.0  # seconds per plugin call
NOT_INITIALIZED = "cni plugin not initialized"


class NetworkError(ContainerdError):
    """A CNI plugin failed, or no network is configured (gRPC ``UNKNOWN``, as containerd)."""

    code = "UNKNOWN"

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.context = message


@dataclass(frozen=True)
class Network:
    """One network list, attached as ``ifname``."""

    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    raw: bytes
    source: str
    ifname: str

    def as_dict(self) -> dict[str, Any]:
        return json.loads(self.raw)


def _version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (0,)


def parse_network(data: bytes, source: str, ifname: str = "") -> Network:
    """A network list from a ``.conflist`` or a single-plugin ``.conf`` document.

    Raises :class:`NetworkError` for bad JSON or a missing ``name``/``type``/``plugins``.
    """
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise NetworkError(f"error parsing CNI configuration {source}: {exc}") from exc
    if not isinstance(doc, dict):
        raise NetworkError(f"error parsing CNI configuration {source}: not a JSON object")
    if "plugins" in doc or source.endswith(".conflist"):
        plugins = doc.get("plugins")
        if not isinstance(plugins, list) or not plugins or not all(isinstance(p, dict) for p in plugins):
            raise NetworkError(f"CNI configuration list {source} has no plugins")
        for p in plugins:
            if not isinstance(p.get("type"), str) or not p["type"]:
                raise NetworkError(f"CNI configuration list {source}: a plugin has no type")
    else:
        if not isinstance(doc.get("type"), str) or not doc["type"]:
            raise NetworkError(f"CNI configuration {source} has no type")
        plugin = dict(doc)
        doc = {"cniVersion": doc.get("cniVersion", ""), "name": doc.get("name", ""), "plugins": [plugin]}
        data = json.dumps(doc).encode()
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise NetworkError(f"CNI configuration {source} has no name")
    return Network(name=name, cni_version=str(doc.get("cniVersion") or "0.1.0"),
                   plugins=tuple(dict(p) for p in doc["plugins"]), raw=bytes(data), source=source, ifname=ifname)


def load_networks(conf_dir: str, max_conf_num: int = 1) -> tuple[list[Network], list[str]]:
    """``(networks, errors)`` from ``conf_dir`` (see module doc). A missing directory is no
    networks; an invalid file is skipped and reported in ``errors``."""
    try:
        names = sorted(n for n in os.listdir(conf_dir) if n.endswith(EXTENSIONS))
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [f"cannot read CNI config dir {conf_dir}: {exc.strerror}"]
    networks: list[Network] = []
    errors: list[str] = []
    for n in names:
        path = os.path.join(conf_dir, n)
        try:
            with open(path, "rb") as f:
                data = f.read()
            networks.append(parse_network(data, path, f"eth{len(networks)}"))
        except (OSError, NetworkError) as exc:
            errors.append(str(exc))
            continue
        if max_conf_num and len(networks) >= max_conf_num:
            break
    return networks, errors


def cni_args(pod_namespace: str, pod_name: str, sandbox_id: str, pod_uid: str) -> list[tuple[str, str]]:
    return [("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", pod_namespace), ("K8S_POD_NAME", pod_name),
            ("K8S_POD_INFRA_CONTAINER_ID", sandbox_id), ("K8S_POD_UID", pod_uid)]


def port_mapping_args(mappings: Sequence[Any]) -> list[dict[str, Any]]:
    """CRI ``PortMapping``\\ s as the ``portMappings`` capability argument (host port > 0 only)."""
    from ..api.cri.runtime.v1 import api_pb2 as cri

    out = []
    for m in mappings:
        if m.host_port <= 0:
            continue
        out.append({"hostPort": m.host_port, "containerPort": m.container_port,
                    "protocol": cri.Protocol.Name(m.protocol).lower(), "hostIP": m.host_ip})
    return out


def plugin_config(net: Network, plugin: Mapping[str, Any], prev_result: Mapping[str, Any] | None,
                  capability_args: Mapping[str, Any]) -> bytes:
    """One plugin's stdin: its configuration with the list's name and version, ``prevResult``
    and ``runtimeConfig`` for the capabilities it declares (libcni ``buildOneConfig``)."""
    conf = dict(plugin)
    conf["name"] = net.name
    conf["cniVersion"] = net.cni_version
    if prev_result is not None:
        conf["prevResult"] = prev_result
    caps = conf.get("capabilities")
    if isinstance(caps, dict):
        rc = dict(conf.get("runtimeConfig") or {})
        for cap, enabled in caps.items():
            if enabled and cap in capability_args:
                rc[cap] = capability_args[cap]
        if rc:
            conf["runtimeConfig"] = rc
    return json.dumps(conf).encode()


def result_ips(result: Mapping[str, Any] | None, ifname: str = "eth0") -> list[str]:
    """The addresses (no prefix length) a result gives ``ifname`` in the sandbox; for
    results that do not link addresses to interfaces, every address."""
    if not result:
        return []
    out: list[str] = []
    ips = result.get("ips")
    if isinstance(ips, list):
        ifaces = result.get("interfaces") or []
        for ip in ips:
            addr = str(ip.get("address", "")).split("/")[0]
            if not addr:
                continue
            idx = ip.get("interface")
            if isinstance(idx, int) and 0 <= idx < len(ifaces):
                iface = ifaces[idx]
                if iface.get("name") != ifname or not iface.get("sandbox"):
                    continue
            out.append(addr)
        return out
    for key in ("ip4", "ip6"):  # CNI 0.1.0 / 0.2.0
        entry = result.get(key)
        if isinstance(entry, dict) and entry.get("ip"):
            out.append(str(entry["ip"]).split("/")[0])
    return out


def select_pod_ips(ips: Sequence[str]) -> tuple[str, list[str]]:
    """``(primary, additional)``: the first IPv4 address is primary (containerd's default
    preference), the others follow in order."""
    if not ips:
        return "", []
    for i, ip in enumerate(ips):
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(ip).version == 4:
                return ip, list(ips[:i]) + list(ips[i + 1:])
    return ips[0], list(ips[1:])


@dataclass
class SetupResult:
    ip: str = ""
    additional_ips: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)   # network name -> ADD result


class CNI:
    """The CNI networks of this daemon (see module doc).

    Args:
        bin_dirs: where plugin binaries are searched, in order (also ``CNI_PATH``).
        conf_dir: network configuration directory; re-read on each :meth:`load`.
        max_conf_num: how many networks to attach (0: all).
        cache_dir: where ADD results are cached for DEL/CHECK.
    """

    def __init__(self, bin_dirs: Sequence[str], conf_dir: str, max_conf_num: int, cache_dir: str) -> None:
        self.bin_dirs = list(bin_dirs)
        self.conf_dir = conf_dir
        self.max_conf_num = max_conf_num
        self.cache_dir = cache_dir
        self.networks: list[Network] = []
        self.errors: list[str] = []

    # -- configuration ---------------------------------------------------------------------

    def load(self) -> list[Network]:
        self.networks, self.errors = load_networks(self.conf_dir, self.max_conf_num)
        return self.networks

    def status(self) -> tuple[bool, str]:
        """``(ready, message)``: ready when at least one network is configured."""
        self.load()
        if self.networks:
            return True, ""
        detail = f": {'; '.join(self.errors)}" if self.errors else f" (no network config found in {self.conf_dir})"
        return False, NOT_INITIALIZED + detail

    def find_plugin(self, plugin_type: str) -> str:
        """The binary for ``plugin_type``. Raises :class:`NetworkError`."""
        if "/" in plugin_type or plugin_type in ("", ".", ".."):
            raise NetworkError(f"invalid CNI plugin type {quote(plugin_type)}")
        for d in self.bin_dirs:
            path = os.path.join(d, plugin_type)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        raise NetworkError(f"failed to find plugin {quote(plugin_type)} in path {self.bin_dirs}")

    # -- execution -------------------------------------------------------------------------

    async def _exec(self, command: str, net: Network, plugin: Mapping[str, Any], stdin: bytes,
                    container_id: str, netns: str, ifname: str, args: Sequence[tuple[str, str]]) -> dict[str, Any]:
        binary = self.find_plugin(plugin["type"])
        env = dict(os.environ)
        env.update({
            "CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
            "CNI_ARGS": ";".join(f"{k}={v}" for k, v in args), "CNI_PATH": os.pathsep.join(self.bin_dirs),
        })
        proc = await asyncio.create_subprocess_exec(
            binary, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env, start_new_session=True)
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), PLUGIN_TIMEOUT)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        what = f"plugin type={quote(plugin['type'])} name={quote(net.name)} failed ({command.lower()})"
        if proc.returncode != 0:
            msg = ""
            with contextlib.suppress(ValueError, AttributeError):
                doc = json.loads(out)
                msg = doc.get("msg", "") + (f"; {doc['details']}" if doc.get("details") else "")
            if not msg:
                msg = (err or out).decode(errors="replace").strip() or f"exit status {proc.returncode}"
            raise NetworkError(f"{what}: {msg}")
        if command != "ADD" or not out.strip():
            return {}
        try:
            result = json.loads(out)
        except ValueError as exc:
            raise NetworkError(f"{what}: invalid result {out[:200]!r}") from exc
        if not isinstance(result, dict):
            raise NetworkError(f"{what}: invalid result {out[:200]!r}")
        return result

    def _cache_path(self, network: str, container_id: str, ifname: str) -> str:
        return os.path.join(self.cache_dir, "results", f"{network}-{container_id}-{ifname}")

    async def _add(self, net: Network, container_id: str, netns: str, args, capability_args) -> dict[str, Any]:
        prev: dict[str, Any] | None = None
        for plugin in net.plugins:
            stdin = plugin_config(net, plugin, prev, capability_args)
            prev = await self._exec("ADD", net, plugin, stdin, container_id, netns, net.ifname, args)
        result = prev or {}
        write_json_atomic(self._cache_path(net.name, container_id, net.ifname), {
            "kind": "cniCacheV1", "containerId": container_id, "config": base64.b64encode(net.raw).decode(),
            "ifName": net.ifname, "networkName": net.name, "cniArgs": [list(a) for a in args],
            "capabilityArgs": dict(capability_args), "result": result, "source": net.source,
        })
        return result

    async def _del(self, net: Network, container_id: str, netns: str, args, capability_args,
                   cached: Mapping[str, Any] | None) -> None:
        """DEL through every plugin, in reverse, even past one that fails (so the IPAM
        address and the veth are released whatever a later plugin did); the first error is
        raised at the end."""
        prev = cached if cached and _version_tuple(net.cni_version) >= (0, 4, 0) else None
        first: Exception | None = None
        for plugin in reversed(net.plugins):
            stdin = plugin_config(net, plugin, prev, capability_args)
            try:
                await self._exec("DEL", net, plugin, stdin, container_id, netns, net.ifname, args)
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    async def setup(self, container_id: str, netns: str, *, pod_namespace: str, pod_name: str, pod_uid: str,
                    port_mappings: Sequence[Any] = ()) -> SetupResult:
        """CNI ADD of loopback and every configured network into ``netns``.

        On failure what was added is deleted again. Raises :class:`NetworkError`
        (``cni plugin not initialized`` when no network is configured).
        """
        networks = self.load()
        if not networks:
            raise NetworkError(self.status()[1])
        args = cni_args(pod_namespace, pod_name, container_id, pod_uid)
        caps = {"portMappings": port_mapping_args(port_mappings)}
        lo = parse_network(json.dumps(LOOPBACK).encode(), "<loopback>", "lo")
        done: list[tuple[Network, dict[str, Any] | None]] = []
        out = SetupResult()
        try:
            for net in [lo, *networks]:
                try:
                    result = await self._add(net, container_id, netns, args, caps)
                except BaseException:
                    done.append((net, None))  # part of the list may be in place: DEL it too
                    raise
                done.append((net, result))
                if net is not lo:
                    out.results[net.name] = result
        except BaseException:
            for net, result in reversed(done):
                with contextlib.suppress(Exception):
                    await self._del(net, container_id, netns, args, caps, result)
                with contextlib.suppress(OSError):
                    os.unlink(self._cache_path(net.name, container_id, net.ifname))
            raise
        default = networks[0]
        out.ip, out.additional_ips = select_pod_ips(result_ips(out.results.get(default.name), default.ifname))
        if not out.ip:
            out.ip, out.additional_ips = select_pod_ips(
                [ip for n in networks for ip in result_ips(out.results.get(n.name), n.ifname)])
        return out

    def cached(self, container_id: str) -> list[dict[str, Any]]:
        """The cache entries of ``container_id`` (loopback last, so DEL runs it last)."""
        d = os.path.join(self.cache_dir, "results")
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            return []
        entries = []
        for n in names:
            path = os.path.join(d, n)
            try:
                with open(path) as f:
                    entry = json.load(f)
            except (OSError, ValueError):
                continue
            if entry.get("containerId") == container_id:
                entry["_path"] = path
                entries.append(entry)
        others = sorted((e for e in entries if e.get("ifName") != "lo"), key=lambda e: e.get("ifName", ""), reverse=True)
        return others + [e for e in entries if e.get("ifName") == "lo"]

    async def teardown(self, container_id: str, netns: str) -> None:
        """CNI DEL of every network ADD put into ``netns`` (from the cache), in reverse.

        Idempotent: with no cache entries there is nothing to do. The first plugin error is
        raised after every network was tried; entries that were deleted are forgotten.
        """
        first: BaseException | None = None
        for entry in self.cached(container_id):
            try:
                net = parse_network(base64.b64decode(entry["config"]), entry.get("source", "<cache>"),
                                    entry.get("ifName", "eth0"))
                args = [tuple(a) for a in entry.get("cniArgs") or []]
                await self._del(net, container_id, netns, args, entry.get("capabilityArgs") or {},
                                entry.get("result"))
            except Exception as exc:  # keep going: release what can be released
                log.warning("cni teardown failed", sandbox=container_id, network=entry.get("networkName"),
                            error=str(exc))
                first = first or exc
                continue
            with contextlib.suppress(OSError):
                os.unlink(entry["_path"])
        if first is not None:
            raise first

    async def check(self, container_id: str, netns: str) -> None:
        """CNI CHECK of every cached network (CNI ≥ 0.4.0 only). Raises :class:`NetworkError`."""
        for entry in self.cached(container_id):
            net = parse_network(base64.b64decode(entry["config"]), entry.get("source", "<cache>"),
                                entry.get("ifName", "eth0"))
            if _version_tuple(net.cni_version) < (0, 4, 0):
                continue
            args = [tuple(a) for a in entry.get("cniArgs") or []]
            for plugin in net.plugins:
                stdin = plugin_config(net, plugin, entry.get("result"), entry.get("capabilityArgs") or {})
                await self._exec("CHECK", net, plugin, stdin, container_id, netns, net.ifname, args)
