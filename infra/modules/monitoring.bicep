// Log Analytics workspace + workspace-based Application Insights.
// Local (key-based) authentication is off on both: telemetry is sent with Entra ID
// (the Functions app gets Monitoring Metrics Publisher, see functionApp.bicep), and the
// Container Apps environment ships its logs through a diagnostic setting, not a shared key.

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags { *: string }

@description('Log Analytics workspace name.')
param logAnalyticsName string

@description('Application Insights component name.')
param appInsightsName string

@description('Days Log Analytics keeps data (30 is the free retention).')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true
      enableLogAccessUsingOnlyResourcePermissions: true
    }
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
    IngestionMode: 'LogAnalytics'
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

output logAnalyticsId string = workspace.id
output logAnalyticsName string = workspace.name
output appInsightsId string = appInsights.id
output appInsightsName string = appInsights.name
