"""imagegate.cli"""
