"""Run aarch64 (arm64) code on an x86 Linux machine under qemu user-mode
emulation, to check the deployment on ARM without an ARM board.

``tools/setup_arm64_emulation.sh`` sets up, once, in a cache outside the
repository (``$EDGEFORMER_MM_CACHE/arm64``, by default
``~/.cache/edgeformer_mm/arm64``): qemu, a Debian bookworm arm64 root with
python3.11, the aarch64 wheels of numpy, opencv-python-headless, ncnn and
onnxruntime (the versions of the x86 environment) in one site directory,
and the ncnn C++ library cross-built for aarch64. :class:`Arm64Emulation`
finds (or makes) that set-up and runs programs in it::

    emu = Arm64Emulation.ensure()        # EmulationUnavailable: no qemu here
    emu.python(['-c', 'import platform; print(platform.machine())']).stdout
    # 'aarch64\\n'
    emu.runtime_cli(bundle_dir, image)   # edgeformer_runtime on arm64
    exe = emu.build_cpp()                # demo/cpp, static aarch64 binary
    emu.run(exe, [bundle_dir, image]).stdout

The emulated programs see the host's file system: absolute host paths
(bundles, images, ``<repo>/runtime``, pytest's ``tmp_path``) work as they
are, for reading and writing. ``QEMU_LD_PREFIX`` makes qemu look a path up
under the arm64 root first, and use it there only if it exists (so the
root's ARM ``/proc/cpuinfo`` and ``/usr/lib`` win). One consequence: a
directory that exists in both, e.g. ``/tmp`` itself, is *listed* from the
root (``os.listdir('/tmp')`` is empty), while ``/tmp/x/y`` is the host's.

qemu emulates its 'max' CPU by default (ARMv8.x with fp16 arithmetic, bf16
and SVE): ncnn then computes in fp16 unless told not to (``cpu=`` picks
another model).

Nothing here imports torch.
"""
import fcntl
import hashlib
import os
import os.path as osp
import platform
import shutil
import subprocess
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SETUP_SCRIPT = osp.join(REPO, 'tools', 'setup_arm64_emulation.sh')
CPP_SOURCE = osp.join(REPO, 'demo', 'cpp')
RUNTIME_DIR = osp.join(REPO, 'runtime')

# The script's exit status when a Debian package (qemu...) cannot be
# installed.
_UNAVAILABLE_STATUS = 3


class EmulationUnavailable(RuntimeError):
    """qemu (or another system package of the set-up) is not installed and
    cannot be installed here: not Linux x86-64, not root, no apt, or apt
    failed. Tests skip on this, and only on this."""


class EmulationError(RuntimeError):
    """The set-up, a build or an emulated program failed."""


def _fail(what: str, proc: subprocess.CompletedProcess) -> EmulationError:
    tail = '\n'.join(
        ((proc.stdout or '') + (proc.stderr or '')).splitlines()[-30:])
    return EmulationError(
        f'{what} failed with status {proc.returncode}:\n{tail}')


@dataclass(frozen=True)
class Arm64Emulation:
    """The cached arm64 emulation set-up: its paths, and ways to run in it.

    Attributes:
        cache (str): The cache directory of all the steps (``.../arm64``).
        root (str): The Debian arm64 root (``QEMU_LD_PREFIX``).
        python_exe (str): The arm64 ``python3.11`` inside ``root``.
        site (str): The unpacked aarch64 wheels (numpy, cv2, ncnn,
            onnxruntime), a directory for ``PYTHONPATH``.
        ncnn_prefix (str): The aarch64 ncnn install (``lib/libncnn.a``,
            ``include/ncnn``).
        ncnn_dir (str): Its CMake config directory (``-Dncnn_DIR``).
        toolchain (str): The CMake toolchain file for aarch64-linux-gnu.
        qemu (str): The ``qemu-aarch64-static`` executable.
    """

    cache: str
    root: str
    python_exe: str
    site: str
    ncnn_prefix: str
    ncnn_dir: str
    toolchain: str
    qemu: str

    @classmethod
    def paths(cls) -> 'Arm64Emulation':
        """The set-up's paths (ready or not; see :meth:`is_ready`), as the
        script computes them (``--paths``): fast, installs nothing.

        Raises:
            EmulationUnavailable: Not a source checkout (no script) or not a
                Linux x86-64 machine.
        """
        if platform.system() != 'Linux' or platform.machine() not in ('x86_64',
                                                                      'AMD64'):
            raise EmulationUnavailable(
                'arm64 emulation is set up for Linux x86-64 hosts only, not '
                f'{platform.system()} {platform.machine()}')
        if not osp.isfile(SETUP_SCRIPT):
            raise EmulationUnavailable(
                f'{SETUP_SCRIPT} not found: '
                'arm64 emulation needs a source checkout')
        proc = subprocess.run(['bash', SETUP_SCRIPT, '--paths'],
                              capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise _fail(f'{SETUP_SCRIPT} --paths', proc)
        values = dict(
            line.split('=', 1) for line in proc.stdout.splitlines()
            if '=' in line)
        return cls(
            cache=values['CACHE'],
            root=values['ROOT'],
            python_exe=values['PYTHON'],
            site=values['SITE'],
            ncnn_prefix=values['NCNN_PREFIX'],
            ncnn_dir=values['NCNN_DIR'],
            toolchain=values['TOOLCHAIN'],
            qemu=values['QEMU'])

    def is_ready(self) -> bool:
        """Whether every step of the set-up is in the cache (the script
        writes each one completely or not at all)."""
        return (os.access(self.qemu, os.X_OK) and all(
            shutil.which(tool) for tool in ('aarch64-linux-gnu-g++', 'cmake'))
                and os.access(self.python_exe, os.X_OK)
                and osp.isfile(osp.join(self.site, '.complete'))
                and osp.isfile(osp.join(self.ncnn_dir, 'ncnnConfig.cmake')))

    @classmethod
    def ensure(cls,
               verbose: bool = False,
               timeout: float = 3600) -> 'Arm64Emulation':
        """The ready set-up, made first if needed by running
        ``tools/setup_arm64_emulation.sh`` (10 to 20 minutes the first time,
        most of it the ncnn build; nothing when cached).

        Args:
            verbose (bool): Let the script's progress lines through to
                stdout. Defaults to False (they are only shown on failure).
            timeout (float): Seconds the script may run. Defaults to 3600.

        Raises:
            EmulationUnavailable: qemu or another system package cannot be
                installed here (the reason is the message).
            EmulationError: Any other failure of the set-up.
        """
        emu = cls.paths()
        if emu.is_ready():
            return emu
        proc = subprocess.run(['bash', SETUP_SCRIPT],
                              stdout=None if verbose else subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              text=True,
                              timeout=timeout)
        if proc.returncode == _UNAVAILABLE_STATUS:
            reason = (proc.stderr or '').strip().splitlines()
            raise EmulationUnavailable(
                reason[-1].lstrip('! ') if reason else 'qemu not available')
        if proc.returncode != 0:
            raise _fail(SETUP_SCRIPT, proc)
        emu = cls.paths()
        if not emu.is_ready():
            raise EmulationError(f'{SETUP_SCRIPT} succeeded but the set-up in '
                                 f'{emu.cache} is incomplete')
        return emu

    def env(self,
            pythonpath: Sequence[str] = (),
            env: Optional[Dict[str, str]] = None,
            cpu: Optional[str] = None) -> Dict[str, str]:
        """A clean environment for an emulated program (as ``env -i``: no
        host variable leaks in, e.g. the x86 ``PYTHONPATH``).

        Args:
            pythonpath (Sequence[str]): Directories for ``PYTHONPATH``, in
                order. :attr:`site` is not added implicitly.
            env (dict, optional): More variables, e.g. ``OMP_NUM_THREADS``.
            cpu (str, optional): The emulated CPU model (``QEMU_CPU``), e.g.
                'cortex-a57' (ARMv8.0, no fp16 arithmetic) or 'max' (qemu's
                default for aarch64 user mode: ARMv8.x with fp16, so ncnn
                uses its fp16 kernels unless told not to).
        """
        result = {
            'QEMU_LD_PREFIX': self.root,
            'PATH': '/usr/local/bin:/usr/bin:/bin',
            'LANG': 'C.UTF-8',
            'HOME': os.environ.get('HOME', '/root'),
            'PYTHONNOUSERSITE': '1',
            # The cache stays as the set-up wrote it (it byte-compiled it).
            'PYTHONDONTWRITEBYTECODE': '1',
        }
        if pythonpath:
            result['PYTHONPATH'] = os.pathsep.join(pythonpath)
        if cpu:
            result['QEMU_CPU'] = cpu
        result.update(env or {})
        return result

    def python(self,
               args: Sequence[str],
               pythonpath: Optional[Sequence[str]] = None,
               env: Optional[Dict[str, str]] = None,
               timeout: float = 600,
               cwd: Optional[str] = None,
               check: bool = True,
               cpu: Optional[str] = None,
               input: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run the arm64 ``python3.11`` with ``args`` under qemu.

        Args:
            args (Sequence[str]): Its arguments, e.g. ``['-c', code]``,
                ``['script.py', ...]`` or ``['-m', 'module', ...]``.
            pythonpath (Sequence[str], optional): ``PYTHONPATH``. Defaults to
                ``[site]`` (numpy, cv2, ncnn, onnxruntime).
            env (dict, optional): More environment variables.
            timeout (float): Seconds. Defaults to 600.
            cwd (str, optional): Working directory (a host path).
            check (bool): Raise :class:`EmulationError` (with the end of its
                output) on a non-zero status. Defaults to True.
            cpu (str, optional): ``QEMU_CPU``, see :meth:`env`.
            input (str, optional): Its standard input.

        Returns:
            subprocess.CompletedProcess: With ``stdout`` and ``stderr`` as
            text.
        """
        pythonpath = [self.site] if pythonpath is None else list(pythonpath)
        return self.run(self.python_exe, args, env, timeout, cwd, check, cpu,
                        input, pythonpath)

    def runtime_cli(self,
                    bundle: str,
                    image: str,
                    out: Optional[str] = None,
                    args: Sequence[str] = (),
                    module: str = 'edgeformer_runtime.cli',
                    **kwargs) -> subprocess.CompletedProcess:
        """Run the torch-free runtime's CLI (``python -m
        edgeformer_runtime.cli BUNDLE IMAGE [--out OUT]``) on arm64, with
        ``PYTHONPATH=[site, <repo>/runtime]``.

        Args:
            bundle (str): The bundle directory (a host path).
            image (str): The image (a host path).
            out (str, optional): ``--out``.
            args (Sequence[str]): More CLI arguments.
            module (str): The module to run. Defaults to the runtime's CLI.
            **kwargs: Passed to :meth:`python` (``timeout``, ``check``...).
        """
        cli = [*args, '--out', out] if out else list(args)
        kwargs.setdefault('pythonpath', [self.site, RUNTIME_DIR])
        return self.python(['-m', module, bundle, image, *cli], **kwargs)

    def run(self,
            binary: str,
            args: Sequence[str] = (),
            env: Optional[Dict[str, str]] = None,
            timeout: float = 600,
            cwd: Optional[str] = None,
            check: bool = True,
            cpu: Optional[str] = None,
            input: Optional[str] = None,
            pythonpath: Sequence[str] = ()) -> subprocess.CompletedProcess:
        """Run an aarch64 executable (static, as :meth:`build_cpp` makes;
        a dynamic one finds its libraries in the arm64 root) under qemu,
        with a clean environment (see :meth:`env`).

        Args:
            binary (str): The executable.
            args (Sequence[str]): Its arguments.
            env (dict, optional): More environment variables.
            timeout (float): Seconds. Defaults to 600.
            cwd (str, optional): Working directory.
            check (bool): Raise :class:`EmulationError` on a non-zero
                status. Defaults to True.
            cpu (str, optional): ``QEMU_CPU``, see :meth:`env`.
            input (str, optional): Its standard input.
            pythonpath (Sequence[str]): ``PYTHONPATH`` (see :meth:`env`).
        """
        proc = subprocess.run([self.qemu, binary, *args],
                              env=self.env(pythonpath, env, cpu),
                              cwd=cwd,
                              input=input,
                              capture_output=True,
                              text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise _fail(f'{osp.basename(binary)} {" ".join(args)[:200]}', proc)
        return proc

    def build_cpp(self,
                  build_dir: Optional[str] = None,
                  source_dir: str = CPP_SOURCE,
                  timeout: float = 1200) -> str:
        """Cross-compile the C++ example (``demo/cpp``) for aarch64, static,
        against the cached ncnn, and return the executable's path. The
        build directory is kept: a rebuild only compiles what changed.

        Args:
            build_dir (str, optional): Defaults to
                ``<cache>/build-cpp/<hash of the source path>``.
            source_dir (str): The CMake project. Defaults to ``demo/cpp``.
            timeout (float): Seconds for configure and build together.

        Raises:
            EmulationError: cmake failed (its output is the message).
        """
        # One build directory per checkout: CMake ties it to its source.
        source_key = hashlib.sha1(
            osp.abspath(source_dir).encode()).hexdigest()[:12]
        build_dir = build_dir or osp.join(self.cache, 'build-cpp', source_key)
        os.makedirs(build_dir, exist_ok=True)
        cmake = shutil.which('cmake') or 'cmake'
        with open(osp.join(build_dir, '.lock'), 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time
            for what, cmd in (
                ('cmake configure', [
                    cmake, '-S', source_dir, '-B', build_dir,
                    f'-DCMAKE_TOOLCHAIN_FILE={self.toolchain}',
                    f'-Dncnn_DIR={self.ncnn_dir}', '-DCMAKE_BUILD_TYPE=Release'
                ]),
                ('cmake build',
                 [cmake, '--build', build_dir, '-j',
                  str(os.cpu_count() or 1)]),
            ):
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=timeout)
                if proc.returncode != 0:
                    raise _fail(what, proc)
        return osp.join(build_dir, 'edgeformer_run')
