"""The MLflow adapter: model registry (register, promote, rollback, audit log), lineage,
loading registered models and classifiers, gate decisions and champion re-scoring.

Used by the ZenML steps and by the CLI; ``components/`` never imports it (nor MLflow).
"""
