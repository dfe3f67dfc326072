// The Flex Consumption plan and the Functions app (isolated worker, .NET 10) with a system-assigned
// identity, identity-based app settings only, and its role assignments here:
//   on the host storage account (AzureWebJobsStorage and the deployment package; it holds nothing else):
//     Storage Blob Data Owner        the host's blob leases, keys (azure-webjobs-secrets), the package container
//     Storage Queue Data Contributor the Event Grid blob trigger's host queue (azure-webjobs-blobtrigger-<host id>)
//     Storage Table Data Contributor the host's diagnostic events table (documented as optional for the host)
//   Monitoring Metrics Publisher on Application Insights (telemetry with Entra ID; local auth is off)
// Its roles on the data account are per container and per queue (storageDataRoles.bicep, from main.bicep).

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags { *: string }

@description('Function app name (also its default host name prefix).')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Name of the host storage account: AzureWebJobsStorage and the deployment package.')
param hostStorageAccountName string

@description('Name of the data storage account: the classifier\'s containers and queues (the ClassifierStorage connection).')
param dataStorageAccountName string

@description('Blob container (in the host account) that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Memory per instance in MB (Flex Consumption instance sizes).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the app scales out to. Flex Consumption scales each trigger type on its own (HTTP, blob, queue), all within this limit: a fan-out of millions of images (ClassifyShard on the shard queue) is what needs it raised, up to 1,000. Each instance runs host.json\'s queues.batchSize + newBatchThreshold shards at a time.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Classifier container names the app reads and writes.')
param imagesContainerName string
param predictionsContainerName string
param modelsContainerName string
param trainingContainerName string
param reviewContainerName string
param jobsContainerName string

@description('The feature store that features shards write (trainjob train --feature-cache --distributed).')
param featuresContainerName string

@description('The shard queue ClassifyShard reads (trainjob classify --container --distributed writes it).')
param shardQueueName string

@description('Application (client) id of the Microsoft Entra app registration people sign in to the review page with (its app roles Reviewer and Approver decide who labels and who approves; docs/deploy.md, "Review sign-in"). Empty: App Service authentication stays off and the review API answers 503 to everyone; classification is unaffected.')
param reviewSignInClientId string = ''

@description('Subnet for Flex Consumption VNet integration (delegated to Microsoft.App/environments). Empty: no VNet integration.')
param virtualNetworkSubnetId string = ''

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'

resource hostStorage 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: hostStorageAccountName
}

resource dataStorage 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: dataStorageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-11-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-11-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    // Private networking: outbound traffic (storage above all) goes through the VNet to the private endpoints.
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'dotnet-isolated'
        version: '10.0'
      }
    }
  }
}

// Identity-based settings only: no account keys, SAS or connection strings with secrets.
// FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION are not allowed on Flex Consumption
// (functionAppConfig.runtime says it).
resource appSettings 'Microsoft.Web/sites/config@2024-11-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    // The host's own storage, its own account (system-assigned identity: the account name is enough).
    AzureWebJobsStorage__accountName: hostStorage.name
    // The classifier's storage connection ("ClassifierStorage") on the data account: blob trigger, model store, outputs.
    ClassifierStorage__blobServiceUri: dataStorage.properties.primaryEndpoints.blob
    ClassifierStorage__queueServiceUri: dataStorage.properties.primaryEndpoints.queue
    ClassifierStorage__credential: 'managedidentity'
    // The connection string names the component and its ingestion endpoint; Microsoft documents it
    // as not a secret. With local auth off, ingestion needs the Entra ID token the next line asks for.
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
    Classifier__ImagesContainer: imagesContainerName
    Classifier__PredictionsContainer: predictionsContainerName
    Classifier__ModelsContainer: modelsContainerName
    // Named here (the defaults are the same) so that the containers the app's roles are scoped to are the ones it uses.
    Classifier__TrainingContainer: trainingContainerName
    Classifier__ReviewContainer: reviewContainerName
    Classifier__JobsContainer: jobsContainerName
    Classifier__FeaturesContainer: featuresContainerName
    // The host resolves the queue trigger's %Classifier:ShardQueue% from app settings.
    Classifier__ShardQueue: shardQueueName
    // The host resolves the sweep timer's %Classifier:SweepSchedule% (like the blob trigger's
    // %Classifier:ImagesContainer%) from app settings, with no default there; the app refuses to start without it.
    Classifier__SweepSchedule: '0 */5 * * * *'
    // Who labels is read from App Service authentication (the authsettingsV2 below), never from the function key.
    // Development (everyone a Reviewer and Approver) is refused at start in Azure.
    Classifier__ReviewIdentity: 'EasyAuth'
    // No polling-source blob trigger here: the package published to Flex Consumption is built without it
    // (dotnet publish -p:FlexConsumption=true), as Flex supports only Event Grid-source blob triggers.
  }
}

// App Service authentication (Easy Auth) with Microsoft Entra ID, for the review page and its API. Unauthenticated
// requests still go on to the Functions host (AllowAnonymous): classify, the model, health and Event Grid's webhook
// keep working with keys alone, and App Service has no setting that requires sign-in for some paths only (excludedPaths
// would have to list every other route, Event Grid's included). The app itself answers the review API 401 without a
// signed-in caller and 403 without the Reviewer/Approver app role: it reads x-ms-client-principal, which App Service
// sets for a signed-in caller and removes from outside requests, and trusts it only while this is on
// (WEBSITE_AUTH_ENABLED). No client secret: the sign-in asks Entra ID for an ID token only (the app registration must
// allow ID tokens), and the token store is off (sessions live in App Service's encrypted cookie).
resource authSettings 'Microsoft.Web/sites/config@2024-11-01' = if (!empty(reviewSignInClientId)) {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: reviewSignInClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    httpSettings: {
      requireHttps: true
    }
  }
}

// No basic-auth publishing: deployments use Entra ID (az functionapp deployment source config-zip).
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-11-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-11-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource hostBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, site.id, storageBlobDataOwnerRoleId)
  scope: hostStorage
  properties: {
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwnerRoleId)
    description: 'Functions host: AzureWebJobsStorage (leases, keys) and the deployment package, on the host account only.'
  }
}

resource hostQueueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, site.id, storageQueueDataContributorRoleId)
  scope: hostStorage
  properties: {
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributorRoleId)
    description: 'Functions host: the blob trigger\'s host queue, on the host account only.'
  }
}

resource hostTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, site.id, storageTableDataContributorRoleId)
  scope: hostStorage
  properties: {
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributorRoleId)
    description: 'Functions host: its diagnostic events table, on the host account only.'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, site.id, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    description: 'Functions app: send telemetry to Application Insights with Entra ID.'
  }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
output principalId string = site.identity.principalId
output planName string = plan.name
