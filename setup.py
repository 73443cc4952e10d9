from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["unaccepted", "unaccepted.*"]),
    cffi_modules=["unaccepted/_build.py:ffibuilder"],
    zip_safe=False,
)
