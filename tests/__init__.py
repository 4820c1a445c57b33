"""ganserve test suite; mirrors the packages."""
