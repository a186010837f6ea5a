# The plugin is installed through its pytest11 entry point; nothing to add at the top level.
# Kept so `pytest` run from the repository root treats it as the rootdir for fixtures/ paths.
