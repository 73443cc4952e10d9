from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildPyWithoutBuilder(build_py):
    """Leave the cffi builder (unaccepted/_build.py) out of wheels: it reads
    csrc/ from the source tree and cannot be imported from an installed
    package.  The build itself still runs it from the tree."""

    def find_package_modules(self, package, package_dir):
        return [m for m in super().find_package_modules(package, package_dir)
                if (m[0], m[1]) != ("unaccepted", "_build")]


setup(
    packages=find_packages(include=["unaccepted", "unaccepted.*"]),
    cffi_modules=["unaccepted/_build.py:ffibuilder"],
    cmdclass={"build_py": BuildPyWithoutBuilder},
    # cffi compiles the extension against the limited API (Py_LIMITED_API,
    # unaccepted/_core.abi3.so); tag the wheel so, for CPython 3.9 and up
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
    zip_safe=False,
)
