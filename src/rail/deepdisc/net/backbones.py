"""Backbones with a feature pyramid, for C input bands.

ResNets use torchvision's ``BackboneWithFPN`` (body + FPN, levels ``"0"``-``"3"`` and a max
pool) on a ResNet whose first convolution takes C bands and whose norms are trainable
GroupNorm: the frozen BatchNorm of torchvision's detection backbones is an identity when
training from scratch, and no ImageNet weights exist for astronomical bands. The ``fine``
stem drops the max pool (stride 2 instead of 4) to keep resolution for small sources.
Swin-T (a transformer) gets the same four-level FPN on its stage outputs.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from torch import Tensor, nn
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from rail.deepdisc.errors import OptionError

_RESNET_RETURN_LAYERS = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}


def group_norm(channels: int) -> nn.GroupNorm:
    """Trainable GroupNorm with up to 32 groups of at least 4 channels."""
    groups = max(1, min(32, channels // 4))
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels)


def resnet_fpn(depth: int, n_bands: int, fpn_channels: int, stem: str) -> nn.Module:
    """A ResNet-``depth`` body for ``n_bands`` channels with torchvision's FPN on top."""
    from torchvision.models import resnet18, resnet34, resnet50
    from torchvision.models.detection.backbone_utils import BackboneWithFPN

    net = {18: resnet18, 34: resnet34, 50: resnet50}[depth](weights=None,
                                                            norm_layer=group_norm)
    net.conv1 = nn.Conv2d(n_bands, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if stem == "fine":
        net.maxpool = nn.Identity()
    widths = [64, 128, 256, 512] if depth < 50 else [256, 512, 1024, 2048]
    return BackboneWithFPN(net, _RESNET_RETURN_LAYERS, widths, fpn_channels,
                           extra_blocks=LastLevelMaxPool())


class SwinFPN(nn.Module):
    """Swin-T for ``n_bands`` channels, its four stages feeding an FPN."""

    def __init__(self, n_bands: int, fpn_channels: int):
        super().__init__()
        from torchvision.models import swin_t

        net = swin_t(weights=None)
        embed = net.features[0][0]
        net.features[0][0] = nn.Conv2d(n_bands, embed.out_channels,
                                       kernel_size=embed.kernel_size, stride=embed.stride)
        self.features = net.features
        self.taps = {1: "0", 3: "1", 5: "2", 7: "3"}
        self.norms = nn.ModuleDict({name: nn.LayerNorm(c) for name, c in
                                    zip(self.taps.values(), (96, 192, 384, 768), strict=True)})
        self.fpn = FeaturePyramidNetwork([96, 192, 384, 768], fpn_channels,
                                         extra_blocks=LastLevelMaxPool())
        self.out_channels = fpn_channels

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        feats: OrderedDict[str, Tensor] = OrderedDict()
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.taps:
                name = self.taps[i]
                feats[name] = self.norms[name](x).permute(0, 3, 1, 2).contiguous()
        return self.fpn(feats)


def build_backbone(arch: dict[str, Any], n_bands: int) -> nn.Module:
    """The backbone + FPN of an architecture (``out_channels`` = FPN width)."""
    name = arch["backbone"]
    if name.startswith("resnet"):
        depth = int(name.removeprefix("resnet").split("_")[0])
        return resnet_fpn(depth, n_bands, arch["fpn_channels"], arch["stem"])
    if name == "swin_t_fpn":
        return SwinFPN(n_bands, arch["fpn_channels"])
    raise OptionError(f"unknown backbone {name!r}")
