"""Keras's config round trip, shared by losses, metrics and regularizers."""


class Configurable:
    """from_config and __repr__ from a subclass's get_config() (the constructor's
    arguments, JSON-serializable)."""

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={val!r}" for k, val in self.get_config().items())
        return f"{type(self).__name__}({args})"
