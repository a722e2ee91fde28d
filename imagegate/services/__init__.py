"""imagegate.services"""
