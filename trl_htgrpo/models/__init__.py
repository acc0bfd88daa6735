"""Native model code of the supported families, registered with the transformers Auto classes."""

__all__: list[str] = []
