"""The networks of both papers (pure torch; constructor arguments are plain numbers and lists)."""

from deepmi.models.dcgan import DCGANEncoder, DCGANFeatures
from deepmi.models.disparity import DisparityNet
from deepmi.models.ib_mlp import GaussianMLPEncoder, SoftmaxDecoder
from deepmi.models.stn_regressor import STNRegressor
from deepmi.models.unet import UNet
from deepmi.models.warp import rigid_matrix, rigid_warp, warp_right_to_left

__all__ = [
    "DCGANEncoder",
    "DCGANFeatures",
    "DisparityNet",
    "GaussianMLPEncoder",
    "STNRegressor",
    "SoftmaxDecoder",
    "UNet",
    "rigid_matrix",
    "rigid_warp",
    "warp_right_to_left",
]
