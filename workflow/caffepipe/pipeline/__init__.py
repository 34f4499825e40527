"""The pipeline itself: the stage list both orchestrators follow, how each orchestrator sees it, params.yaml."""
