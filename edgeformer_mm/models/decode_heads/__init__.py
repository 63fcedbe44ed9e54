from .deeplabv3_head import DeepLabV3Head

__all__ = ['DeepLabV3Head']
