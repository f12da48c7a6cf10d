#!/usr/bin/env python3
"""Checks of deploy/docker/Dockerfile and the compose files against the built binaries.

Run by tests/deploy/check_deploy.sh (which first validates the compose files with
docker-compose and lints the Dockerfile), with the resolved compose configuration:

  deploy_checks.py --build-dir BUILD --source-dir SRC --compose-config resolved.yml

What it checks (each line of output is "ok   ..." or "FAIL ..."):
  flags      every TELEMETRY_* variable a compose service or a Dockerfile target sets is a flag
             of a binary in that image (flag foo_bar <-> TELEMETRY_FOO_BAR, see
             common/config.cc), or, in the tests image, a variable the test harness reads;
             every --flag on a compose command line is a flag of the entrypoint binary.
  libraries  every shared library a binary of a runtime target links directly (readelf NEEDED)
             is in a package named in that target's apt-get install list, and every library
             it loads (ldd) is in that list or in its dependencies (apt-cache depends), the
             .so -> package mapping coming from dpkg -S on this machine.
  build      the build stage installs the documented build packages, and every system file
             CMake configured the local build with (CMakeCache.txt: compiler, ninja, package
             configs, libraries; pkg-config .pc files; grpc_cpp_plugin) is in one of them or
             their dependencies.
  dockerfile stages and bases, non-root USER, STOPSIGNAL, HEALTHCHECK, EXPOSE vs the listen
             ports, COPY sources that exist, apt packages that Debian knows.
  compose    build targets exist, depends_on conditions are satisfiable (a healthcheck for
             service_healthy, no restart policy for service_completed_successfully),
             published ports are the ports the services listen on, bind-mounted files exist,
             the topics job runs the admin image's create-topics (the platform's own topic
             list), the Kafka image is the version deploy/local installs (kafka/pom.xml), the
             integration service sets what the harness requires.
  runtime    each service binary started with its image's environment answers the image's
             HEALTHCHECK (healthcheck.sh) and exits 0 on its STOPSIGNAL within the compose
             stop_grace_period; dependencies are pointed at 127.0.0.1:1 (refused), so this
             touches no real server.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

import yaml

DOCKERFILE = "deploy/docker/Dockerfile"
BUILD_STAGE = "build"
BUILD_STAGE_IMAGE = "debian:12"
RUNTIME_BASE_IMAGE = "debian:12-slim"
RUNTIME_TARGETS = ("ingest", "writer", "query", "alert", "bridge", "export", "admin", "tests")
SERVICE_TARGETS = ("ingest", "writer", "query", "alert", "bridge", "export")  # long-running servers: health check, ports
BUILD_OUT = "/src/build/"  # the build dir inside the build stage
STAGED_INTEGRATION = "/stage/integration"  # stage-tests.sh output in the build stage
# The build packages the project documents (README / deploy/local/install-deps.sh).
REQUIRED_BUILD_PACKAGES = (
    "build-essential cmake ninja-build pkg-config libgrpc++-dev protobuf-compiler-grpc "
    "libprotobuf-dev protobuf-compiler libpqxx-dev libhiredis-dev librdkafka-dev libabsl-dev "
    "libspdlog-dev libcpp-httplib-dev libgtest-dev libgmock-dev libssl-dev"
).split()
# Apache Arrow C++ comes from the pinned pyarrow wheel (deploy/local/install-arrow.sh), not from
# Debian: the build stage unpacks it here (TELEMETRY_ARROW_ROOT), and an image whose binaries
# load it copies ARROW_IMAGE_ROOT/lib/ from the build stage to the same path (their RUNPATH).
ARROW_IMAGE_ROOT = "/opt/arrow"
TOPICS_SERVICE = "kafka-topics"
KAFKA_POM = "deploy/local/kafka/pom.xml"
DEFAULT_STOP_GRACE_S = 10  # docker's default


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []

    def ok(self, what: str) -> None:
        self.passed += 1
        print(f"ok   {what}", flush=True)

    def fail(self, what: str) -> None:
        self.failed.append(what)
        print(f"FAIL {what}", flush=True)

    def check(self, cond: bool, what: str, why: str = "") -> bool:
        if cond:
            self.ok(what)
        else:
            self.fail(f"{what}: {why}" if why else what)
        return cond


def run(cmd: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


# ----------------------------------------------------------------------------- Dockerfile model


class Stage:
    def __init__(self, name: str, base: str, line: int) -> None:
        self.name = name
        self.base = base
        self.line = line
        self.parent: Stage | None = None
        self.instructions: list[tuple[int, str, str]] = []

    def chain(self) -> list["Stage"]:
        """This stage and the stages it is built FROM, root first."""
        out: list[Stage] = []
        s: Stage | None = self
        while s is not None:
            out.append(s)
            s = s.parent
        return list(reversed(out))

    def root_image(self) -> str:
        return self.chain()[0].base


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Dockerfile instructions with continuations joined and comment lines dropped."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for i, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue  # comment (also inside a continuation, as Docker does)
        if not buf:
            if not stripped:
                continue
            start = i
        if raw.rstrip().endswith("\\"):
            buf.append(raw.rstrip()[:-1])
            continue
        buf.append(raw)
        out.append((start, " ".join(part.strip() for part in buf if part.strip())))
        buf = []
    if buf:
        out.append((start, " ".join(part.strip() for part in buf)))
    return out


def parse_dockerfile(path: str) -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    order: list[Stage] = []
    current: Stage | None = None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for line, instr in logical_lines(text):
        keyword, _, args = instr.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            base = words[0]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else f"#{len(order)}"
            current = Stage(name, base, line)
            current.parent = stages.get(base)
            stages[name] = current
            order.append(current)
            continue
        if current is not None:
            current.instructions.append((line, keyword, args))
    return stages


def instrs(stage: Stage, keyword: str, inherited: bool = True) -> list[tuple[int, str]]:
    chain = stage.chain() if inherited else [stage]
    return [(ln, a) for s in chain for ln, k, a in s.instructions if k == keyword]


def last(stage: Stage, keyword: str) -> str | None:
    found = instrs(stage, keyword)
    return found[-1][1] if found else None


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for _, args in instrs(stage, "ENV"):
        words = shlex.split(args)
        if words and "=" not in words[0]:  # legacy ENV key value
            env[words[0]] = " ".join(words[1:])
            continue
        for w in words:
            k, _, v = w.partition("=")
            env[k] = v
    return env


def exec_form(args: str) -> list[str] | None:
    try:
        v = json.loads(args)
    except json.JSONDecodeError:
        return None
    return v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None


def apt_packages(run_args: str) -> list[str]:
    """Packages of every `apt-get install` in a RUN instruction's shell command."""
    lexer = shlex.shlex(run_args, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    tokens = list(lexer)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] in ("apt-get", "apt") and "install" in tokens[i + 1 : i + 8]:
            j = i + 1
            while j < len(tokens) and tokens[j] != "install":
                j += 1
            j += 1
            while j < len(tokens) and tokens[j] not in (";", "&&", "||", "|", "&"):
                if not tokens[j].startswith("-"):
                    out.append(tokens[j].split("=")[0])
                j += 1
            i = j
        else:
            i += 1
    return out


def apt_of(stage: Stage, inherited: bool = True) -> list[str]:
    pkgs: list[str] = []
    for _, args in instrs(stage, "RUN", inherited):
        pkgs += apt_packages(args)
    return pkgs


def copies(stage: Stage) -> list[tuple[str | None, list[str], str]]:
    """(from-stage or None for the context, sources, destination) of each COPY/ADD."""
    out = []
    for _, k, args in [(ln, k, a) for s in stage.chain() for ln, k, a in s.instructions]:
        if k not in ("COPY", "ADD"):
            continue
        words = exec_form(args) or shlex.split(args)
        frm = None
        rest = []
        for w in words:
            if w.startswith("--from="):
                frm = w.split("=", 1)[1]
            elif w.startswith("--"):
                continue
            else:
                rest.append(w)
        if len(rest) >= 2:
            out.append((frm, rest[:-1], rest[-1]))
    return out


def map_context_path(stage: Stage, image_path: str) -> str | None:
    """The context (repository) file that ends up at image_path, through the COPYs."""
    for frm, srcs, dest in copies(stage):
        if frm is not None:
            continue
        for src in srcs:
            if dest == image_path:
                return src
            if dest.endswith("/") and image_path == dest + os.path.basename(src.rstrip("/")):
                return src
    return None


# ----------------------------------------------------------------------------- binaries, flags


@functools.lru_cache(maxsize=None)
def flags_of(binary: str) -> frozenset[str]:
    """Flag names from `binary --helpfull` (absl prints '    --name (help); default: ...')."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    p = run([binary, "--helpfull"], timeout=30, env=env)
    names = re.findall(r"^\s+--([A-Za-z0-9_]+)[\s(]", p.stdout + p.stderr, re.M)
    return frozenset(names)


def harness_env_names(source_dir: str) -> set[str]:
    """TELEMETRY_* variables the integration test code reads itself."""
    names: set[str] = set()
    d = os.path.join(source_dir, "tests", "integration")
    for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if f.endswith((".cc", ".h")):
            with open(os.path.join(d, f), encoding="utf-8") as fh:
                names |= set(re.findall(r'"(TELEMETRY_[A-Z0-9_]+)"', fh.read()))
    return names


def harness_required_env(source_dir: str) -> set[str]:
    names: set[str] = set()
    d = os.path.join(source_dir, "tests", "integration")
    for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if f.endswith((".cc", ".h")):
            with open(os.path.join(d, f), encoding="utf-8") as fh:
                names |= set(re.findall(r'RequireEnv\("(TELEMETRY_[A-Z0-9_]+)"\)', fh.read()))
    return names


@functools.lru_cache(maxsize=None)
def integration_tests(build_dir: str) -> tuple[tuple[str, str | None], ...]:
    """(name, executable relative to the build dir, None if not built) of what
    `ctest -L integration` runs."""
    p = run(["ctest", "--test-dir", build_dir, "-L", "^integration$", "--show-only=json-v1"])
    if p.returncode != 0:
        raise RuntimeError(f"ctest --show-only failed: {p.stderr.strip()}")
    out = []
    real_build = os.path.realpath(build_dir)
    for t in json.loads(p.stdout).get("tests", []):
        if not t.get("command"):  # ctest lists a test whose executable is missing so
            out.append((t["name"], None))
            continue
        exe = os.path.realpath(t["command"][0])
        out.append((t["name"], os.path.relpath(exe, real_build)))
    return tuple(out)


class Target:
    """What a runtime target of the Dockerfile carries, resolved against the build dir."""

    def __init__(self, stage: Stage, build_dir: str, source_dir: str) -> None:
        self.stage = stage
        self.name = stage.name
        self.binaries: list[str] = []  # relative to the build dir
        self.missing: list[str] = []
        self.stages_integration = False
        for frm, srcs, _dest in copies(stage):
            if frm != BUILD_STAGE:
                continue
            for src in srcs:
                if src.startswith(BUILD_OUT):
                    rel = src[len(BUILD_OUT) :].rstrip("/")
                    (self.binaries if os.path.isfile(os.path.join(build_dir, rel))
                     else self.missing).append(rel)
                elif src.rstrip("/") == ARROW_IMAGE_ROOT + "/lib":
                    pass  # the wheel's Arrow libraries, unpacked by the build stage itself
                elif src.rstrip("/") == STAGED_INTEGRATION:
                    self.stages_integration = True
                    for test, rel in integration_tests(build_dir):
                        if rel is None:
                            self.missing.append(f"{test} (integration test, not built)")
                        else:
                            self.binaries.append(rel)
                else:
                    self.missing.append(src)
        # Programs with absl flags: the services and tools (never run a test binary here).
        self.flag_owners = [b for b in self.binaries if b.startswith(("services/", "tools/"))]
        self.allowed_env: set[str] = set()
        for b in self.flag_owners:
            self.allowed_env |= {f"TELEMETRY_{f.upper()}" for f in flags_of(os.path.join(build_dir, b))}
        if self.stages_integration:
            self.allowed_env |= harness_env_names(source_dir)
        entry = exec_form(last(stage, "ENTRYPOINT") or "") or []
        self.entry_binary: str | None = None
        if entry:
            base = os.path.basename(entry[0])
            for b in self.flag_owners:
                if os.path.basename(b) == base:
                    self.entry_binary = b


# ----------------------------------------------------------------------------- libraries


def needed(binary: str) -> list[str]:
    p = run(["readelf", "-d", binary])
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout)


def runpath(binary: str) -> list[str]:
    p = run(["readelf", "-d", binary])
    return re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library (?:rpath|runpath): \[([^\]]+)\]", p.stdout)


def ldd(binary: str) -> tuple[dict[str, str], list[str]]:
    """{soname: path} of everything the loader maps, and the sonames it cannot find."""
    p = run(["ldd", binary])
    libs: dict[str, str] = {}
    missing: list[str] = []
    for line in p.stdout.splitlines():
        line = line.strip()
        m = re.match(r"(\S+) => not found", line)
        if m:
            missing.append(m.group(1))
            continue
        m = re.match(r"(\S+) => (/\S+) \(", line)
        if m:
            libs[m.group(1)] = m.group(2)
            continue
        m = re.match(r"(/\S+) \(", line)  # the dynamic loader itself
        if m:
            libs[os.path.basename(m.group(1))] = m.group(1)
    return libs, missing


_OWNERS: dict[str, str | None] = {}  # path as asked -> Debian package


def _usr_variants(p: str) -> list[str]:
    """merged /usr: /lib/x and /usr/lib/x are one file, dpkg registered one of the names."""
    if p.startswith("/usr/"):
        return [p, p[4:]]
    return [p, "/usr" + p] if p.startswith("/") else [p]


def packages_of(paths: dict[str, str]) -> dict[str, str | None]:
    """{key: Debian package owning the file} via dpkg -S, in one call with exact paths (a glob
    makes dpkg-query scan every file list and takes seconds). The file's own name wins (a
    -dev package's libfoo.so symlink belongs to the -dev package); its symlink target is the
    fallback (ldd prints names dpkg may not have registered)."""
    todo = sorted(set(paths.values()) - set(_OWNERS))
    if todo:
        names = {p: _usr_variants(p) + _usr_variants(os.path.realpath(p)) for p in todo}
        out = run(["dpkg-query", "-S", *sorted({v for vs in names.values() for v in vs})]).stdout
        found: dict[str, str] = {}
        for line in out.splitlines():
            pkgs, sep, path = line.partition(": ")
            if sep and "diversion" not in pkgs:
                found.setdefault(path.strip(), pkgs.split(",")[0].strip().split(":")[0])
        for p, variants in names.items():
            _OWNERS[p] = next((found[v] for v in variants if v in found), None)
    return {key: _OWNERS.get(path) for key, path in paths.items()}


@functools.lru_cache(maxsize=None)
def depends_closure(pkgs: frozenset[str]) -> frozenset[str]:
    p = run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
             "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *sorted(pkgs)],
            timeout=120)
    names = {ln.strip() for ln in p.stdout.splitlines() if ln and not ln.startswith(" ")}
    return frozenset(n.split(":")[0] for n in names if not n.startswith("<")) | pkgs


def cmake_cache_value(build_dir: str, key: str) -> str | None:
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt"), encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(rf"{re.escape(key)}:\w+=(.*)$", line.strip())
                if m:
                    return m.group(1)
    except OSError:
        pass
    return None


def check_libraries(r: Report, t: Target, build_dir: str) -> None:
    explicit = set(apt_of(t.stage))
    closure = depends_closure(frozenset(explicit))
    arrow_root = cmake_cache_value(build_dir, "TELEMETRY_ARROW_ROOT")
    arrow_lib = os.path.join(arrow_root, "lib") + "/" if arrow_root else None
    copies_arrow = any(frm == BUILD_STAGE and any(x.rstrip("/") == ARROW_IMAGE_ROOT + "/lib" for x in srcs)
                       and dest.rstrip("/") == ARROW_IMAGE_ROOT + "/lib" for frm, srcs, dest in copies(t.stage))
    for rel in t.binaries:
        path = os.path.join(build_dir, rel)
        libs, not_found = ldd(path)
        what = f"libraries: {t.name}: {rel}"
        if not_found:
            r.fail(f"{what}: ldd cannot find {', '.join(not_found)} on this machine")
            continue
        # The image puts the binary elsewhere: nothing may be found through the build dir.
        rp = [d for d in runpath(path) if d.startswith(("$ORIGIN", build_dir, "/src/"))]
        if rp:
            r.fail(f"{what}: RPATH/RUNPATH {':'.join(rp)} points into the build tree")
            continue
        outside = {so: p for so, p in libs.items() if p.startswith(build_dir + "/")}
        if outside:
            r.fail(f"{what}: loads {', '.join(sorted(outside))} from the build dir")
            continue
        libs.pop("linux-vdso.so.1", None)
        problems = []
        # The wheel's Arrow libraries: in the image only if the stage copies them.
        arrow = {so for so, p in libs.items() if arrow_lib and p.startswith(arrow_lib)}
        if arrow and not copies_arrow:
            problems.append(f"loads {', '.join(sorted(arrow))} (Apache Arrow from the wheel), but the "
                            f"{t.name} stage does not COPY --from={BUILD_STAGE} {ARROW_IMAGE_ROOT}/lib/ "
                            f"{ARROW_IMAGE_ROOT}/lib/")
        for so in arrow:
            libs.pop(so)
        owners = packages_of(libs)
        direct = [so for so in needed(path) if so not in arrow]
        for so in direct:
            pkg = owners.get(so)
            if so not in libs:
                problems.append(f"{so} (NEEDED) not resolved by ldd")
            elif pkg is None:
                problems.append(f"{so} ({libs[so]}) belongs to no Debian package")
            elif pkg not in explicit:
                problems.append(f"{so} is in {pkg}, which the {t.name} stage does not install")
        for so, pkg in owners.items():
            if so in direct:
                continue
            if pkg is None:
                problems.append(f"{so} ({libs[so]}) belongs to no Debian package")
            elif pkg not in closure:
                problems.append(f"{so} is in {pkg}, not a dependency of the installed packages")
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        r.check(not problems, f"{what} ({len(direct)} direct, {len(libs)} loaded)", shown)


# ----------------------------------------------------------------------------- build inputs


def build_inputs(build_dir: str, source_dir: str) -> dict[str, str]:
    """{what: file} of the system files this build dir was configured with: the compiler and
    generator, every find_package config, library and tool in CMakeCache.txt, the .pc file of
    every pkg_check_modules module and the gRPC protoc plugin."""
    out: dict[str, str] = {}
    cache = os.path.join(build_dir, "CMakeCache.txt")
    with open(cache, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"([A-Za-z_][\w]*):(FILEPATH|PATH)=(/\S+)$", line.strip())
            if not m or m.group(3).startswith((build_dir, source_dir)):
                continue
            key, path = m.group(1), m.group(3)
            if key.endswith("_DIR") and os.path.isdir(path):
                configs = [c for c in sorted(os.listdir(path))
                           if c.endswith(("Config.cmake", "-config.cmake"))]
                if configs:
                    out[key] = os.path.join(path, configs[0])
            elif os.path.isfile(path) and not key.startswith("CMAKE_ADDR2LINE"):
                out[key] = path
    with open(os.path.join(source_dir, "CMakeLists.txt"), encoding="utf-8") as f:
        modules = re.findall(r"pkg_check_modules\(\s*\w+\s+(?:REQUIRED\s+)?(?:IMPORTED_TARGET\s+)?([\w+.-]+)",
                             f.read())
    for mod in modules:
        p = run(["pkg-config", "--path", mod])
        if p.returncode == 0 and p.stdout.strip():
            out[f"pkg-config {mod}"] = p.stdout.strip()
        else:
            out[f"pkg-config {mod}"] = f"(pkg-config cannot find {mod})"
    plugin = run(["sh", "-c", "command -v grpc_cpp_plugin"]).stdout.strip()
    if plugin:
        out["grpc_cpp_plugin"] = plugin
    return out


def check_build_inputs(r: Report, stages: dict[str, Stage], build_dir: str, source_dir: str) -> None:
    b = stages.get(BUILD_STAGE)
    if b is None or not os.path.isfile(os.path.join(build_dir, "CMakeCache.txt")):
        r.fail("build inputs: no build stage or no CMakeCache.txt in the build dir")
        return
    inputs = build_inputs(build_dir, source_dir)
    owners = packages_of({k: v for k, v in inputs.items() if v.startswith("/")})
    closure = depends_closure(frozenset(apt_of(b)))
    problems = []
    for key, path in sorted(inputs.items()):
        pkg = owners.get(key)
        if pkg is None:
            problems.append(f"{key}={path} belongs to no Debian package")
        elif pkg not in closure:
            problems.append(f"{key}={path} is in {pkg}, which the build stage does not install")
    r.check(not problems, f"build inputs: the {len(inputs)} system files CMake configured this build "
            "with (compilers, package configs, libraries, .pc files, protoc plugin) come from the "
            "build stage's packages or their dependencies", "; ".join(problems))


# ----------------------------------------------------------------------------- Dockerfile checks


def check_dockerfile(r: Report, stages: dict[str, Stage], src: str, build_dir: str) -> dict[str, Target]:
    b = stages.get(BUILD_STAGE)
    if r.check(b is not None, f"dockerfile: a '{BUILD_STAGE}' stage exists"):
        r.check(b.base == BUILD_STAGE_IMAGE, f"dockerfile: {BUILD_STAGE} stage is FROM {BUILD_STAGE_IMAGE}",
                f"FROM {b.base}")
        missing = sorted(set(REQUIRED_BUILD_PACKAGES) - set(apt_of(b)))
        r.check(not missing, "dockerfile: build stage installs the documented build packages",
                f"missing {' '.join(missing)}")
        # Every source directory the root CMakeLists.txt adds is copied into the build stage.
        with open(os.path.join(src, "CMakeLists.txt"), encoding="utf-8") as f:
            cm = re.sub(r"#.*", "", f.read())
        dirs = set(re.findall(r"add_subdirectory\(\s*([\w./-]+)", cm))
        for body in re.findall(r"foreach\(\s*dir\s+([^)]*)\)", cm):
            dirs |= set(body.split())
        tops = {d.split("/")[0] for d in dirs if not d.startswith("$")}
        copied = {x.rstrip("/").split("/")[0] for frm, srcs, _ in copies(b) if frm is None for x in srcs}
        r.check(bool(tops) and tops <= copied,
                f"dockerfile: build stage copies every directory CMakeLists.txt builds ({' '.join(sorted(tops))})",
                f"not copied: {' '.join(sorted(tops - copied))}")
    # Every apt package named anywhere must be one Debian 12 knows (typos fail here, not in a
    # docker build nobody ran).
    all_pkgs = sorted({p for s in stages.values() for p in apt_of(s, inherited=False)})
    p = run(["apt-cache", "policy", *all_pkgs], timeout=60)
    known = set()
    for block in re.split(r"\n(?=\S)", p.stdout):
        m = re.match(r"(\S+?)(?::\w+)?:\n\s+Installed: (\S+)\n\s+Candidate: (\S+)", block)
        if m and (m.group(2) != "(none)" or m.group(3) != "(none)"):
            known.add(m.group(1))
    unknown = [x for x in all_pkgs if x not in known]
    r.check(not unknown, f"dockerfile: all {len(all_pkgs)} apt packages are known to apt here",
            f"unknown: {' '.join(unknown)} (run apt-get update?)")

    # Every context path the Dockerfile COPYs is sent by its .dockerignore (an allowlist).
    ignore = os.path.join(src, DOCKERFILE + ".dockerignore")
    if r.check(os.path.isfile(ignore), f"dockerfile: {DOCKERFILE}.dockerignore exists"):
        with open(ignore, encoding="utf-8") as f:
            allowed = [ln.strip()[1:].rstrip("/") for ln in f if ln.strip().startswith("!")]
        ctx_srcs = sorted({s_ for st in stages.values() for frm, srcs, _ in copies(st) if frm is None
                           for s_ in srcs})
        not_sent = [x for x in ctx_srcs
                    if not any(x.rstrip("/") == a or x.startswith(a + "/") for a in allowed)]
        r.check(not not_sent, f"dockerfile: the .dockerignore allowlist sends all {len(ctx_srcs)} COPY sources",
                f"not sent: {' '.join(not_sent)}")
    ctx_srcs = sorted({x for st in stages.values() for frm, srcs, _ in copies(st) if frm is None for x in srcs})
    absent = [x for x in ctx_srcs if not os.path.exists(os.path.join(src, x))]
    r.check(not absent, f"dockerfile: all {len(ctx_srcs)} COPY sources from the repository exist",
            f"missing: {' '.join(absent)}")

    targets: dict[str, Target] = {}
    for name in RUNTIME_TARGETS:
        st = stages.get(name)
        if not r.check(st is not None, f"dockerfile: target '{name}' exists"):
            continue
        r.check(st.root_image() == RUNTIME_BASE_IMAGE, f"dockerfile: {name} is based on {RUNTIME_BASE_IMAGE}",
                f"root image {st.root_image()}")
        r.check(not set(apt_of(st)) & {"build-essential", "cmake", "g++", "gcc"} and
                not any(x.endswith("-dev") for x in apt_of(st)),
                f"dockerfile: {name} installs no compiler or -dev package")
        user = (last(st, "USER") or "root").split(":")[0]
        r.check(user not in ("root", "0"), f"dockerfile: {name} runs as a non-root user ({user})")
        r.check((last(st, "STOPSIGNAL") or "") == "SIGTERM", f"dockerfile: {name} has STOPSIGNAL SIGTERM")
        t = Target(st, build_dir, src)
        r.check(not t.missing, f"dockerfile: {name}: COPY --from={BUILD_STAGE} sources are built",
                f"not in {build_dir}: {' '.join(t.missing)}")
        r.check(bool(t.binaries), f"dockerfile: {name} carries at least one binary")
        targets[name] = t
        env = env_of(st)
        bad = sorted(k for k in env if k.startswith("TELEMETRY_") and k not in t.allowed_env)
        r.check(not bad, f"flags: Dockerfile ENV of {name} are flags of {', '.join(map(os.path.basename, t.flag_owners))}"
                + (" or harness variables" if t.stages_integration else ""), f"unknown: {' '.join(bad)}")
        if name in SERVICE_TARGETS:
            hc = last(st, "HEALTHCHECK") or "NONE"
            r.check(hc.split()[0].upper() != "NONE", f"dockerfile: {name} has a HEALTHCHECK")
            exposed = {x.split("/")[0] for _, a in instrs(st, "EXPOSE") for x in a.split()}
            wanted = set()
            if "TELEMETRY_LISTEN" in env:
                wanted.add(env["TELEMETRY_LISTEN"].rsplit(":", 1)[-1])
            if "TELEMETRY_HTTP_PORT" in env:
                wanted.add(env["TELEMETRY_HTTP_PORT"])
            r.check(bool(wanted) and wanted <= exposed,
                    f"dockerfile: {name} EXPOSEs its listen ports {sorted(wanted)}", f"EXPOSE {sorted(exposed)}")
            r.check(env.get("TELEMETRY_HTTP_HOST") in ("0.0.0.0", "::")
                    and env.get("TELEMETRY_LISTEN", "0.0.0.0:").startswith(("0.0.0.0:", "[::]:")),
                    f"dockerfile: {name} listens on all interfaces by default")
    return targets


# ----------------------------------------------------------------------------- compose checks


def service_env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def target_of(svc: dict, services: dict) -> str | None:
    build = svc.get("build")
    if isinstance(build, dict) and build.get("target"):
        return build["target"]
    image = svc.get("image")
    for other in services.values():  # an image built by another service
        ob = other.get("build")
        if image and isinstance(ob, dict) and other.get("image") == image:
            return ob.get("target")
    return None


def local_kafka_version(src: str) -> str | None:
    with open(os.path.join(src, KAFKA_POM)) as f:
        m = re.search(r"<kafka.version>([^<]+)</kafka.version>", f.read())
    return m.group(1) if m else None


LOCAL_BINARIES = ("services/ingest/telemetry-ingest", "services/writer/telemetry-writer",
                  "services/query/telemetry-query", "services/alert/telemetry-alert",
                  "services/bridge/telemetry-bridge", "tools/admin/telemetry-admin")


def check_local_env(r: Report, src: str, build_dir: str) -> None:
    """Every variable deploy/local's env file sets is a flag of a service (which then picks it
    up as TELEMETRY_<FLAG>) or a variable the test harness reads: a name that is neither looks
    like configuration and configures nothing (the demo's TELEMETRY_PG_REPLICA once did)."""
    with open(os.path.join(src, "deploy/local/up.sh"), encoding="utf-8") as f:
        text = f.read()
    block = text[text.find('cat >"$ENV_FILE.tmp"'):]
    block = block[:block.find("\nEOF")]
    names = sorted(set(re.findall(r"^(TELEMETRY_[A-Z0-9_]+)=", block, re.M)))
    flags: set[str] = set()
    for b in LOCAL_BINARIES:
        flags |= {"TELEMETRY_" + f.upper() for f in flags_of(os.path.join(build_dir, b))}
    harness = harness_required_env(src) | {"TELEMETRY_LOCAL_DIR"}  # read by scripts and kafka.sh
    bad = [n for n in names if n not in flags and n not in harness]
    r.check(bool(names) and not bad,
            f"local env: its {len(names)} variables are service flags or harness variables",
            f"neither: {' '.join(bad)}")


def check_compose(r: Report, config: dict, targets: dict[str, Target], src: str,
                  build_dir: str) -> None:
    services: dict = config.get("services") or {}
    for name in sorted(services):
        svc = services[name]
        target = target_of(svc, services)
        env = service_env(svc)
        tel = sorted(k for k in env if k.startswith("TELEMETRY_"))
        build = svc.get("build")
        if isinstance(build, dict):
            df = os.path.normpath(os.path.join(build.get("context", "."), build.get("dockerfile", "Dockerfile")))
            r.check(df == os.path.normpath(os.path.join(src, DOCKERFILE)),
                    f"compose: {name} builds {DOCKERFILE}", f"builds {df}")
            r.check(target in targets, f"compose: {name} builds target '{target}' of the Dockerfile")
        if target not in targets:
            r.check(not tel, f"flags: {name} (not our image) sets no TELEMETRY_* variable",
                    f"sets {' '.join(tel)}")
        else:
            t = targets[target]
            bad = [k for k in tel if k not in t.allowed_env]
            owners = ", ".join(os.path.basename(b) for b in t.flag_owners)
            r.check(not bad, f"flags: {name}: {len(tel)} TELEMETRY_* variables are flags of {owners}"
                    + (" or harness variables" if t.stages_integration else ""),
                    f"not a flag: {' '.join(bad)}")
            cmd = svc.get("command") or []
            if isinstance(cmd, str):
                cmd = shlex.split(cmd)
            if t.entry_binary and not svc.get("entrypoint"):
                flags = flags_of(os.path.join(build_dir, t.entry_binary))
                used = [a[2:].split("=")[0] for a in cmd if a.startswith("--")]
                bad = [f for f in used if f not in flags and not (f.startswith("no") and f[2:] in flags)]
                r.check(not bad, f"flags: {name}: command-line flags {used} are flags of "
                        f"{os.path.basename(t.entry_binary)}", f"unknown: {' '.join(bad)}")
            # Published ports are the ports the service listens on.
            eff = {**env_of(t.stage), **env}
            listening = set()
            if "TELEMETRY_LISTEN" in eff:
                listening.add(int(eff["TELEMETRY_LISTEN"].rsplit(":", 1)[-1]))
            if "TELEMETRY_HTTP_PORT" in eff:
                listening.add(int(eff["TELEMETRY_HTTP_PORT"]))
            published = set()
            for p in svc.get("ports") or []:
                published.add(int(p["target"]) if isinstance(p, dict) else int(str(p).rsplit(":", 1)[-1].split("/")[0]))
            r.check(published <= listening, f"compose: {name} publishes only ports it listens on {sorted(listening)}",
                    f"publishes {sorted(published)}")
            if target == "tests" and "integration" in cmd:
                need = harness_required_env(src)
                miss = sorted(need - set(eff))
                r.check(not miss, f"compose: {name} sets what the test harness requires ({', '.join(sorted(need))})",
                        f"missing {' '.join(miss)}")
        # depends_on conditions must be satisfiable.
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in sorted(deps.items()):
            cond = (spec or {}).get("condition", "service_started")
            d = services.get(dep)
            if not r.check(d is not None, f"compose: {name} depends on existing service {dep}"):
                continue
            if cond == "service_healthy":
                hc = d.get("healthcheck") or {}
                has = bool(hc.get("test")) and not hc.get("disable") and hc.get("test") != ["NONE"]
                dt = target_of(d, services)
                if not has and dt in targets:
                    img_hc = last(targets[dt].stage, "HEALTHCHECK") or "NONE"
                    has = img_hc.split()[0].upper() != "NONE"
                r.check(has, f"compose: {name} waits for {dep} healthy, and {dep} has a health check")
            elif cond == "service_completed_successfully":
                restart = str(d.get("restart", "no"))
                r.check(restart in ("no", "False", "false"),
                        f"compose: {name} waits for one-shot {dep} to complete, and {dep} is not restarted",
                        f"restart: {restart}")
        # Bind-mounted files exist.
        for v in svc.get("volumes") or []:
            if isinstance(v, dict):
                kind, source = v.get("type"), v.get("source", "")
            else:
                source = str(v).split(":")[0]
                kind = "bind" if source.startswith(("/", ".")) else "volume"
            if kind == "bind":
                r.check(os.path.exists(source), f"compose: {name}: bind mount {source} exists")
    # Our services are all there, with health-gated dependencies.
    for name in SERVICE_TARGETS:
        users = [n for n in services if target_of(services[n], services) == name]
        if r.check(bool(users), f"compose: a service runs the {name} image"):
            for n in users:
                conds = {(s or {}).get("condition") for s in (services[n].get("depends_on") or {}).values()} \
                    if isinstance(services[n].get("depends_on"), dict) else set()
                r.check(bool(conds) and conds <= {"service_healthy", "service_completed_successfully"},
                        f"compose: {n} depends only on healthy or completed services", f"conditions {conds}")
    # The topics come from the platform's admin step, as in deploy/local.
    ts = services.get(TOPICS_SERVICE, {})
    cmd = ts.get("command") or []
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    r.check(target_of(ts, services) == "admin" and cmd[:1] == ["create-topics"],
            f"compose: {TOPICS_SERVICE} runs telemetry-admin create-topics",
            f"target {target_of(ts, services)}, command {cmd}")
    # Every Kafka image is the version deploy/local runs.
    want = local_kafka_version(src)
    images = sorted({str(s.get("image")) for s in services.values()
                     if str(s.get("image", "")).startswith("apache/kafka:")})
    r.check(bool(images) and images == [f"apache/kafka:{want}"],
            f"compose: Kafka is apache/kafka:{want}, the version of {KAFKA_POM}", f"images {images}")


# ----------------------------------------------------------------------------- runtime checks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_runtime(r: Report, targets: dict[str, Target], config: dict, src: str, build_dir: str) -> None:
    services: dict = config.get("services") or {}
    for name in SERVICE_TARGETS:
        t = targets.get(name)
        if t is None or t.entry_binary is None:
            r.fail(f"runtime: {name}: no entrypoint binary to start")
            continue
        hc = exec_form((last(t.stage, "HEALTHCHECK") or "").partition("CMD")[2].strip())
        if not hc:
            r.fail(f"runtime: {name}: HEALTHCHECK is not an exec-form CMD")
            continue
        # The HEALTHCHECK runs files COPY'd from the repository: run those files.
        hc = [os.path.join(src, map_context_path(t.stage, a)) if map_context_path(t.stage, a) else a for a in hc]
        flags = flags_of(os.path.join(build_dir, t.entry_binary))
        # The image's environment, with a fresh loopback port, and every dependency refused
        # (127.0.0.1:1): nothing real is contacted, whatever TELEMETRY_* the caller exported.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
        env.update(env_of(t.stage))
        port = free_port()
        env.update({"TELEMETRY_HTTP_HOST": "127.0.0.1", "TELEMETRY_HTTP_PORT": str(port)})
        dead = {"listen": "127.0.0.1:0", "pg_primary": "postgresql://nobody@127.0.0.1:1/none",
                "kafka_brokers": "127.0.0.1:1", "redis": "127.0.0.1:1",
                "mqtt_host": "127.0.0.1", "mqtt_port": "1",
                "group": f"deploy-check-{os.getpid()}"}
        env.update({f"TELEMETRY_{k.upper()}": v for k, v in dead.items() if k in flags})
        # The image's paths (an archive root, say) go to a scratch directory, not this machine's /.
        scratch = tempfile.TemporaryDirectory(prefix="deploy-check-")
        if "archive_root" in flags:
            env["TELEMETRY_ARCHIVE_ROOT"] = os.path.join(scratch.name, "archive")
        log = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen([os.path.join(build_dir, t.entry_binary)], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            healthy, last_err = False, ""
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and proc.poll() is None:
                p = run(hc, timeout=10, env=env)
                if p.returncode == 0:
                    healthy = True
                    break
                last_err = (p.stderr or p.stdout).strip()
                time.sleep(0.3)
            r.check(healthy, f"runtime: {name}: the image HEALTHCHECK ({' '.join(hc[-2:])}) passes on the running binary",
                    last_err or f"exited {proc.returncode}")
            # A compose healthcheck override must reach an existing endpoint of the binary.
            for svc_name, svc in services.items():
                if target_of(svc, services) != name:
                    continue
                test = (svc.get("healthcheck") or {}).get("test") or []
                if not test or test[0] != "CMD":
                    continue
                cmd = [os.path.join(src, map_context_path(t.stage, a)) if map_context_path(t.stage, a) else a
                       for a in test[1:]]
                p = run(cmd, timeout=10, env=env)
                out = (p.stderr + p.stdout).strip()
                reachable = p.returncode == 0 or re.search(r"HTTP/1\.[01] [25]0\d", out) is not None
                r.check(reachable, f"runtime: {svc_name}: the compose healthcheck ({' '.join(test[-2:])}) "
                        f"reaches the endpoint (exit {p.returncode}, ready or not: its dependencies are down here)",
                        out)
            # STOPSIGNAL ends it cleanly within the compose stop_grace_period.
            sig = getattr(signal, last(t.stage, "STOPSIGNAL") or "SIGTERM")
            grace = DEFAULT_STOP_GRACE_S
            for svc_name, svc in services.items():
                if target_of(svc, services) == name and svc.get("stop_grace_period"):
                    g = str(svc["stop_grace_period"])
                    grace = int(re.match(r"(\d+)", g).group(1)) * (60 if g.endswith("m") else 1)
            start = time.monotonic()
            if proc.poll() is None:
                proc.send_signal(sig)
            try:
                rc = proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                rc = None
            took = time.monotonic() - start
            r.check(rc == 0, f"runtime: {name}: exits 0 on {sig.name} (took {took:.1f}s, grace {grace}s)",
                    f"exit {rc}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if r.failed and r.failed[-1].startswith(f"runtime: {name}"):
                log.seek(0)
                print("     --- log of the binary:\n" + "".join("     " + ln for ln in log.readlines()[-15:]))
            log.close()


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--compose-config", required=True, help="output of `docker-compose ... config`")
    ap.add_argument("--skip-runtime", action="store_true")
    a = ap.parse_args()
    src = os.path.realpath(a.source_dir)
    build_dir = os.path.realpath(a.build_dir)
    r = Report()
    stages = parse_dockerfile(os.path.join(src, DOCKERFILE))
    targets = check_dockerfile(r, stages, src, build_dir)
    check_build_inputs(r, stages, build_dir, src)
    for name in RUNTIME_TARGETS:
        if name in targets:
            check_libraries(r, targets[name], build_dir)
    with open(a.compose_config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    check_compose(r, config, targets, src, build_dir)
    check_local_env(r, src, build_dir)
    if not a.skip_runtime:
        check_runtime(r, targets, config, src, build_dir)
    print(f"deploy_checks.py: {r.passed} passed, {len(r.failed)} failed")
    for f in r.failed:
        print(f"  failed: {f}")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
