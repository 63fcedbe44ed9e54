from .edgeformer import EdgeFormer, ParCStage

__all__ = ['EdgeFormer', 'ParCStage']
