"""Build of fastnn's compiled core: the C kernels in csrc/ and their Cython binding.

One extension module, fastnn._kernels, compiled with OpenMP when the compiler has it
(otherwise the kernels run on one thread; FASTNN_REQUIRE_OPENMP=1 makes that an
error). The default build targets any x86-64 CPU;
hot loops get AVX2/FMA clones chosen at load time (csrc/simd.h). FASTNN_NATIVE=1 builds
for the local CPU only (-march=native).
"""

import os
import sys
import tempfile
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _compiler_accepts(compiler, flags):
    """True if a tiny OpenMP library compiles and links with `flags`, built the way the
    extension is (a shared object: the link carries LDFLAGS, so sanitizer or other
    flags in CFLAGS/LDFLAGS do not make the probe fail and silently drop OpenMP)."""
    src = "#include <omp.h>\nint fnn_probe(void) { return omp_get_max_threads(); }\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(src)
        try:
            objects = compiler.compile([path], output_dir=tmp, extra_postargs=flags)
            # A shared object may leave symbols undefined; the probe must not (the
            # runtime library has to be found now, not at import).
            strict = ["-Wl,--no-undefined"] if sys.platform.startswith("linux") else []
            compiler.link_shared_object(
                objects, os.path.join(tmp, "probe.so"), extra_postargs=flags + strict
            )
        except Exception as e:
            print(f"fastnn: OpenMP probe with {flags} failed: {e}")
            return False
    return True


class BuildExt(build_ext):
    """Adds optimisation and OpenMP flags that suit the compiler at hand."""

    def build_extensions(self):
        if self.compiler.compiler_type == "msvc":
            compile_args, link_args = ["/O2", "/openmp"], []
        else:
            compile_args = [
                "-O3",
                "-fno-math-errno",
                "-fno-trapping-math",
                # a binding call that misses its kernel's prototype fails
                # the build (csrc/binding.h)
                "-Werror=implicit-function-declaration",
                "-Werror=incompatible-pointer-types",
            ]
            link_args = []
            if os.environ.get("FASTNN_NATIVE") == "1":
                compile_args += ["-march=native", "-DFASTNN_NATIVE"]
            openmp = ["-Xpreprocessor", "-fopenmp"] if sys.platform == "darwin" else ["-fopenmp"]
            if _compiler_accepts(self.compiler, openmp):
                compile_args += openmp
                link_args += ["-lomp"] if sys.platform == "darwin" else ["-fopenmp"]
            elif os.environ.get("FASTNN_REQUIRE_OPENMP") == "1":
                raise RuntimeError(
                    "fastnn: FASTNN_REQUIRE_OPENMP=1 but the compiler "
                    "cannot build OpenMP code (see the probe's error above)"
                )
            else:
                compile_args += ["-fopenmp-simd"] if sys.platform != "darwin" else []
                print("fastnn: no OpenMP in this compiler; kernels will run on one thread")
        for ext in self.extensions:
            ext.extra_compile_args += compile_args
            ext.extra_link_args += link_args
        super().build_extensions()


kernels = Extension(
    "fastnn._kernels",
    sources=["fastnn/_kernels.pyx"] + sorted(glob("csrc/*.c")),
    include_dirs=["csrc", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    depends=glob("csrc/*.h") + glob("csrc/generic/*.h") + glob("fastnn/*.pxi"),
)

setup(
    ext_modules=cythonize([kernels], compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildExt},
)
