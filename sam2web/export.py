"""Writers for the fixed-name export files.

OWNER: geometry helper. Contract:
    EXPORT_FILES = ("annotations.geojson", "annotations.csv", "connections.csv", "nimbus.json")
    export_bytes(annotations, connections, random_weights=False) -> dict[str, bytes]
    write_exports(out_dir, annotations, connections, random_weights=False) -> list[Path]   atomic per file
    zip_bytes(files: dict[str, bytes]) -> bytes
"""
