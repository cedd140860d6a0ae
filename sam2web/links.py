"""Parent -> child connections between consecutive polygons of each object (SPEC.md rule).

OWNER: geometry helper. Contract:
    connect(annotations: list[Annotation], enabled=True) -> list[Connection]
"""
