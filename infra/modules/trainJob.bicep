// The GPU training job: a Container Apps managed environment with a serverless GPU workload profile
// and a manually triggered Container Apps job running the TrainJob image, with a user-assigned
// identity that has AcrPull on the registry (the job pulls its image by identity) here, and its
// storage roles per container and per queue of the data account (storageDataRoles.bicep, from main.bicep).
// Environment logs go to Log Analytics through a diagnostic setting (no workspace shared key).

@description('Azure region (must offer serverless GPUs for the chosen profile).')
param location string

@description('Tags for every resource.')
param tags { *: string }

@description('Container Apps managed environment name.')
param environmentName string

@description('Container Apps job name.')
param jobName string

@description('User-assigned identity name for the job.')
param identityName string

@description('Name of the container registry that holds the TrainJob image.')
param registryName string

@description('Name of the data storage account the job reads training data from and publishes models to.')
param storageAccountName string

@description('Resource id of the Log Analytics workspace for environment logs.')
param logAnalyticsId string

@description('Serverless GPU workload profile type.')
@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
])
param gpuWorkloadProfileType string = 'Consumption-GPU-NC8as-T4'

@description('Name the workload profile gets inside the environment.')
param gpuWorkloadProfileName string = 'gpu'

@description('Full image reference the job runs.')
param image string

@description('True when the image is in the registry (pulled by identity); false for a public placeholder image.')
param imageFromRegistry bool

@description('Container arguments (the TrainJob CLI).')
param args string[]

@description('The jobs container and shard queue of classify --container --distributed.')
param jobsContainerName string
param shardQueueName string

@description('The feature store of train --feature-cache.')
param featuresContainerName string

@description('vCPUs for the container (NC8as-T4 profile: up to 8; NC24-A100: up to 24).')
param cpu int = 8

@description('Memory for the container (NC8as-T4 profile: up to 56Gi; NC24-A100: up to 220Gi).')
param memory string = '56Gi'

@description('Longest a training run may take, in seconds.')
@minValue(60)
param replicaTimeoutSeconds int = 14400

@description('Subnet of the Container Apps environment (workload profiles, delegated to Microsoft.App/environments, at least /27). Empty: no VNet.')
param infrastructureSubnetId string = ''

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d'

resource registry 'Microsoft.ContainerRegistry/registries@2025-04-01' existing = {
  name: registryName
}

resource storage 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: identityName
  location: location
  tags: tags
}

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, identity.id, acrPullRoleId)
  scope: registry
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
    description: 'TrainJob: pull its image from the registry.'
  }
}

resource environment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'azure-monitor'
    }
    // Private networking: the environment in the VNet (no public ingress; the job opens none), so the job reaches
    // storage through the private endpoints.
    vnetConfiguration: empty(infrastructureSubnetId)
      ? null
      : {
          infrastructureSubnetId: infrastructureSubnetId
          internal: true
        }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
      {
        name: gpuWorkloadProfileName
        workloadProfileType: gpuWorkloadProfileType
      }
    ]
    zoneRedundant: false
  }
}

resource environmentLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: environment
  properties: {
    workspaceId: logAnalyticsId
    // Resource-specific tables (ContainerAppConsoleLogs, ContainerAppSystemLogs), not AzureDiagnostics.
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

resource job 'Microsoft.App/jobs@2025-01-01' = {
  name: jobName
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    environmentId: environment.id
    workloadProfileName: gpuWorkloadProfileName
    configuration: {
      triggerType: 'Manual'
      manualTriggerConfig: {
        parallelism: 1
        replicaCompletionCount: 1
      }
      replicaTimeout: replicaTimeoutSeconds
      // A lost replica (node loss, a crash) is started again up to twice; with the default arguments it restores the run's
      // checkpoint from the checkpoints container and continues after the last completed epoch (train --checkpoints).
      replicaRetryLimit: 2
      registries: imageFromRegistry
        ? [
            {
              server: registry.properties.loginServer
              identity: identity.id
            }
          ]
        : []
    }
    template: {
      containers: [
        {
          name: 'trainjob'
          image: image
          args: args
          env: [
            {
              name: 'ClassifierStorage__blobServiceUri'
              value: storage.properties.primaryEndpoints.blob
            }
            {
              name: 'ClassifierStorage__queueServiceUri'
              value: storage.properties.primaryEndpoints.queue
            }
            {
              name: 'Classifier__JobsContainer'
              value: jobsContainerName
            }
            {
              name: 'Classifier__FeaturesContainer'
              value: featuresContainerName
            }
            {
              name: 'Classifier__ShardQueue'
              value: shardQueueName
            }
            {
              name: 'ClassifierStorage__credential'
              value: 'managedidentity'
            }
            {
              name: 'ClassifierStorage__clientId'
              value: identity.properties.clientId
            }
            {
              // DefaultAzureCredential / ManagedIdentityCredential pick the user-assigned identity by it.
              name: 'AZURE_CLIENT_ID'
              value: identity.properties.clientId
            }
          ]
          resources: {
            cpu: cpu
            memory: memory
          }
        }
      ]
    }
  }
  // The registry pull is checked when the job is created: the role must exist first.
  dependsOn: [
    acrPull
  ]
}

output environmentName string = environment.name
output jobName string = job.name
output identityName string = identity.name
output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId
