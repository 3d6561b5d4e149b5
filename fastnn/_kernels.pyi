# Type stub of the compiled binding (fastnn/_kernels.pyx and its .pxi includes): the
# kernels are private and checked at run time, so their names are typed loosely here.
from typing import Any

def __getattr__(name: str) -> Any: ...
