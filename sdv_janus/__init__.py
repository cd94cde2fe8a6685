"""sdv-janus: the JANUS synthesizer for the SDV ecosystem."""

from sdv_janus.synthesizer import JanusSynthesizer

__all__ = ['JanusSynthesizer']
__version__ = '0.1.0'
