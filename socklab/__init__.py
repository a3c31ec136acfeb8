"""socklab: containerised hosts on virtual networks, running checked socket lessons."""
