"""Items: the example domain resource. Copy this folder to add your own."""
