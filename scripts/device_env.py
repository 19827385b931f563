"""The emulated Raspberry Pi userland for `make device-test` (DESIGN.md section 10).

Everything lives under .cache/device-test/ (git-ignored), built on demand and reused:
- rootfs-bookworm-arm64/: Debian bookworm arm64 with python3.11, unpacked by `mmdebstrap
  --variant=extract` (no maintainer scripts, so no emulation needed to build it; ~75 MB);
- site-<env>-<arch>/: wheels installed by the host pip with --platform/--target: the aarch64
  (and, for the x86 side of the comparison, the x86_64) builds of the same package versions;
- the project's own wheel (`make wheel`, dist/edgeskin-<version>-py3-none-any.whl) installed into
  each site folder with --no-deps, so the emulated Python runs what `pip install edgeskin-*.whl[pi]`
  puts on a Pi, its package data included, not this checkout's source folders.
Programs run as `qemu-aarch64-static -L ROOTFS -cpu CPU ROOTFS/usr/bin/python3.11 ...`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "device-test"
ROOTFS = CACHE / "rootfs-bookworm-arm64"
# set by device_test.py --wheel; pure Python (py3-none-any), so one file serves aarch64 and x86_64
WHEEL: Path | None = None
SOURCES = ("pyproject.toml", "edgeskin", "runtime", "converters")  # what the wheel is built from
MIRROR = os.environ.get("EDGESKIN_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PYTHON_VERSION = "3.11"
# Every manylinux tag bookworm's glibc 2.36 accepts: given only the oldest, pip falls back to
# the newest release that still ships such a wheel, an old ai-edge-litert (DESIGN.md section 10).
GLIBC_MINORS = range(17, 37)

# The two Pi CPUs. Features as the boards' kernels print them (Pi 4's BCM2711 has no crypto
# extensions; the A76 adds dot product). qemu-user passes the host's /proc/cpuinfo through, and
# ai-edge-litert's CPU detection crashes on an x86 one, so each run gets one of these.
CPUS = {
    "cortex-a72": ("fp asimd evtstrm crc32 cpuid", "0x0", "0xd08", "3"),
    "cortex-a76": ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
                   "0x4", "0xd0b", "1"),
}

# name -> (pip requirements, import name of the TFLite runtime). flatbuffers comes with ai-edge-litert
# anyway; named here so that x86 gets the arm64 version of the code that reads the metadata (pinned())
ENVIRONMENTS = {
    "litert": (["numpy", "Pillow", "ai-edge-litert>=2.3,<2.4", "flatbuffers"], "ai_edge_litert"),  # as [pi] pins it
    # the oldest ai-edge-litert the files are checked on (informational pass)
    "litert-2.1.0": (["numpy", "Pillow", "ai-edge-litert==2.1.0", "flatbuffers"], "ai_edge_litert"),
    # tflite-runtime lacks the TFLite schema classes the metadata is read with: the `tflite` package has them
    "tflite-runtime": (["numpy<2", "Pillow", "tflite-runtime==2.14.0", "tflite==2.18.0"], "tflite_runtime"),
}


def log(message: str) -> None:
    print(f"[device-test] {message}", file=sys.stderr, flush=True)


def ensure_tools() -> None:
    """mmdebstrap and qemu-user-static, installed with apt when missing (root only)."""
    missing = [pkg for tool, pkg in (("mmdebstrap", "mmdebstrap"), ("qemu-aarch64-static", "qemu-user-static"))
               if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"device-test needs {' '.join(missing)}: sudo apt-get install -y {' '.join(missing)}")
    log(f"installing {' '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def ensure_rootfs() -> Path:
    if (ROOTFS / "usr" / "bin" / f"python{PYTHON_VERSION}").is_file():
        return ROOTFS
    staging = ROOTFS.with_name(ROOTFS.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    log(f"building the arm64 bookworm userland (mmdebstrap, {MIRROR})")
    subprocess.run(["mmdebstrap", "--quiet", "--variant=extract", "--arch=arm64",
                    f"--include=python{PYTHON_VERSION},libstdc++6", "bookworm", str(staging), MIRROR],
                   check=True)
    (staging / "proc").mkdir(exist_ok=True)
    staging.rename(ROOTFS)
    return ROOTFS


def platforms(arch: str) -> list[str]:
    return [f"manylinux2014_{arch}"] + [f"manylinux_2_{minor}_{arch}" for minor in GLIBC_MINORS]


def installed_versions(site: Path) -> dict[str, str]:
    """{distribution name: version} from the .dist-info folders of a --target install."""
    found = {}
    for info in site.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        found[name.lower().replace("_", "-")] = version
    return found


def ensure_site(env: str, arch: str, requirements: list[str] | None = None) -> Path:
    """Wheels for `env` built for `arch` (aarch64 or x86_64), installed with the host pip, and edgeskin's own."""
    site = CACHE / f"site-{env}-{arch}"
    requirements = requirements or ENVIRONMENTS[env][0]
    stamp = site / ".requirements"
    if stamp.is_file() and stamp.read_text() == "\n".join(requirements):
        return install_wheel(site)
    staging = site.with_name(site.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(site, ignore_errors=True)
    log(f"installing {arch} wheels into {site.relative_to(REPO)}: {' '.join(requirements)}")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts",
               "--no-compile", "--target", str(staging), "--only-binary=:all:", "--python-version", PYTHON_VERSION,
               "--implementation", "cp", "--abi", f"cp{PYTHON_VERSION.replace('.', '')}"]
    for tag in platforms(arch):
        command += ["--platform", tag]
    done = subprocess.run([*command, *requirements], capture_output=True, text=True)
    if done.returncode:  # pip's own output only when it failed (its warnings about local indexes are noise)
        raise SystemExit(f"pip failed for {arch} {' '.join(requirements)}:\n{done.stdout}{done.stderr}")
    (staging / ".requirements").write_text("\n".join(requirements))
    staging.rename(site)
    return install_wheel(site)


def pinned(site: Path, env: str) -> list[str]:
    """The requirements of `env`, pinned to what `site` holds (so x86 gets the same versions)."""
    versions = installed_versions(site)
    pins = []
    for requirement in ENVIRONMENTS[env][0]:
        name = requirement.split("<")[0].split("=")[0].split(">")[0].strip()
        pins.append(f"{name}=={versions[name.lower()]}")
    return pins


def default_wheel() -> Path:
    """dist/edgeskin-<pyproject version>-py3-none-any.whl, where `make wheel` writes it."""
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return REPO / "dist" / f"edgeskin-{version}-py3-none-any.whl"


@functools.cache
def check_wheel(wheel: Path) -> Path:
    """The wheel to test; warns when source files changed after it was built (it would test old code)."""
    if not wheel.is_file():
        raise SystemExit(f"no {wheel}: `make wheel` builds it (`make device-test` does that first)")
    built = wheel.stat().st_mtime
    newer = [p for name in SOURCES for p in ([REPO / name] if name.endswith(".toml") else (REPO / name).rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts and p.stat().st_mtime > built]
    if newer:
        log(f"warning: {len(newer)} source files changed after {wheel.name} was built (e.g. "
            f"{newer[0].relative_to(REPO)}): `make wheel` to test them")
    return wheel


def install_wheel(site: Path) -> Path:
    """The project's wheel in `site`, replacing an earlier build (stamped by its sha256)."""
    wheel = check_wheel(WHEEL or default_wheel())
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    stamp = site / ".edgeskin-wheel"
    if stamp.is_file() and stamp.read_text() == f"{wheel.name} {digest}":
        return site
    for old in [*site.glob("edgeskin"), *site.glob("edgeskin-*.dist-info"), *site.glob("bin/edgeskin*")]:
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    log(f"installing {wheel.name} into {site.relative_to(REPO)}")
    # --upgrade: its bin/ (console scripts with the host's shebang, unused here) replaces the site's
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                           "--no-compile", "--upgrade", "--target", str(site), str(wheel)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"pip failed to install {wheel}:\n{done.stdout}{done.stderr}")
    stamp.write_text(f"{wheel.name} {digest}")
    return site


def write_cpuinfo(cpu: str, cores: int = 4) -> None:
    """ROOTFS/proc/cpuinfo of a 4-core Pi with this CPU (qemu -L serves it to the emulated program)."""
    features, variant, part, revision = CPUS[cpu]
    block = (f"BogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
             f"CPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n")
    text = "".join(f"processor\t: {i}\n{block}\n" for i in range(cores))
    (ROOTFS / "proc").mkdir(exist_ok=True)
    (ROOTFS / "proc" / "cpuinfo").write_text(text)


def python_command(arch: str, cpu: str | None = None) -> list[str]:
    """The interpreter for `arch`: the emulated bookworm python3.11, or this host's without site-packages."""
    if arch == "x86_64":
        return [sys.executable, "-S"]
    write_cpuinfo(cpu)
    return ["qemu-aarch64-static", "-L", str(ROOTFS), "-cpu", cpu, str(ROOTFS / "usr" / "bin" / f"python{PYTHON_VERSION}"), "-s"]


def run_python(arch: str, cpu: str | None, site: Path, args: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.update(PYTHONPATH=str(site), PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
    # not from the checkout: `-m` puts the working folder first on sys.path, and the checkout's edgeskin/
    # would shadow the installed wheel's
    return subprocess.run([*python_command(arch, cpu), *args], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=CACHE)


def imported_from(arch: str, cpu: str | None, site: Path) -> Path:
    """Where the emulated (or x86) run imports edgeskin-pi from: must be the wheel installed in `site`."""
    done = run_python(arch, cpu, site, ["-c", "import edgeskin.runtime.pi as m; print(m.__file__)"], timeout=300)
    found = Path(done.stdout.strip() or ".")
    if done.returncode or not found.is_relative_to(site):
        raise SystemExit(f"{arch} {cpu or ''}: edgeskin.runtime.pi imported from {found}, not {site}:\n{done.stderr[-2000:]}")
    return found
