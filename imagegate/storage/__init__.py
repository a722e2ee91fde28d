"""imagegate.storage"""
