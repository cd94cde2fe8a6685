"""sdv-janus: the JANUS synthesizer for the SDV ecosystem."""

# SDV loads its add-ons (this package's entry point among them) while it is imported, so SDV is
# imported first: the entry point then finds a fully initialised ``sdv_janus.synthesizer``.
import sdv  # noqa: F401, I001

from sdv_janus.synthesizer import JanusSynthesizer

__all__ = ["JanusSynthesizer"]
__version__ = "0.1.0"
