"""A stand-in for torchvision in the LeRobot test environment, where the real one cannot be imported.

PyPI's torchvision wheels are CUDA builds (their _C.so links libtorch_cuda.so), and importing one next to a CPU
torch fails ("operator torchvision::nms does not exist"). lerobot-dataset imports torchvision at module level but
never uses it to write a dataset (images go through PIL, videos through PyAV) nor to read its tables: this module
lets the import succeed, and every attribute LeRobot could call raises, so a code path that does need torchvision
fails loudly instead of doing something else.
"""

from types import SimpleNamespace


def _refuse(*_args, **_kwargs):
    raise RuntimeError("torchvision is a stand-in in vlascore's LeRobot test environment: this path needs the real one")


class _Refusing:
    def __init__(self, *_args, **_kwargs):
        _refuse()


transforms = SimpleNamespace(ToTensor=_Refusing, v2=SimpleNamespace())
io = SimpleNamespace(VideoReader=_Refusing)
set_video_backend = _refuse
__version__ = "0.0.0+vlascore-standin"
