"""imagegate.api"""
