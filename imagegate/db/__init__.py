"""imagegate.db"""
